"""Adapters load as `tuning-core infer` loads them, and lm-eval's log-likelihoods are right for each kind."""

import json

import pytest
from eval_helpers import LABELS, cli, hand_loglikelihood, prompt, task_docs, train_argv

pytestmark = pytest.mark.slow


def _loglikelihoods_match(loaded, n=3):
    """lm-eval's per-request numbers through our HFLM equal a plain forward pass of the loaded model."""
    from lm_eval.api.instance import Instance

    from tuning_core_eval.harness import make_lm

    reqs = [(prompt(d), " " + c) for d in task_docs(n) for c in LABELS]
    lm = make_lm(loaded.model, loaded.tokenizer, batch_size=4)
    got = [
        ll
        for ll, _ in lm.loglikelihood(
            [Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)], disable_tqdm=True
        )
    ]
    want = [hand_loglikelihood(loaded.model, loaded.tokenizer, *r) for r in reqs]
    assert got == pytest.approx(want, abs=1e-4)
    return got


def test_prompt_tuning_adapter(tmp_path, tiny_llama, twitter_data):
    """Virtual tokens are prepended to the logits: lm-eval must score the real positions."""
    from tuning_core.pipeline import run_training
    from tuning_core.plugin_api import load_for_inference

    run_training(
        train_argv(
            tiny_llama,
            twitter_data,
            tmp_path,
            "--peft_method",
            "pt",
            "--max_steps",
            "1",
            "--prompt_tuning_init",
            "RANDOM",
            "--num_virtual_tokens",
            "4",
            "--save_model_dir",
            str(tmp_path / "final"),
        )
    )
    loaded = load_for_inference(str(tmp_path / "final"))
    assert "PROMPT_TUNING" in loaded.description
    tuned = _loglikelihoods_match(loaded)
    base = load_for_inference(str(tiny_llama))
    assert tuned != pytest.approx(
        [hand_loglikelihood(base.model, base.tokenizer, prompt(d), " " + c) for d in task_docs(3) for c in LABELS],
        abs=1e-4,
    )  # the prompt is applied


def test_lora_adapter_with_base_override(lora_run, tiny_llama, tmp_path):
    """--base_model_name_or_path: the adapter goes onto a copy of its base elsewhere; nothing on disk changes."""
    import shutil

    from tuning_core.plugin_api import load_for_inference

    out, _ = lora_run
    moved = tmp_path / "moved_base"
    shutil.copytree(tiny_llama, moved)
    before = (out / "final" / "adapter_config.json").read_text()
    loaded = load_for_inference(str(out / "final"), str(moved))
    assert "LORA" in loaded.description and (out / "final" / "adapter_config.json").read_text() == before
    _loglikelihoods_match(loaded)


def test_lora_adapter_on_gptq_base(tmp_path, tiny_llama, twitter_data, plugins_enabled):
    """A GPTQ base (made by `tuning-core quantize`) loads through the peft_gptq plugin's loader hook."""
    from tuning_core.pipeline import run_training
    from tuning_core.plugin_api import load_for_inference

    calib = tmp_path / "calib.txt"
    calib.write_text(
        "\n".join(json.loads(line)["output"].replace("\n", " ") for line in twitter_data.read_text().splitlines()[:16])
    )
    gptq = tmp_path / "gptq"
    proc = cli(
        "quantize",
        "--model_name_or_path",
        tiny_llama,
        "--output_dir",
        gptq,
        "--group_size",
        "32",
        "--calibration_data",
        calib,
        "--num_samples",
        "8",
        "--seq_len",
        "32",
        plugins="peft_gptq",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plugins_enabled("eval", "peft_gptq")
    run_training(
        train_argv(
            gptq,
            twitter_data,
            tmp_path / "run",
            "--peft_method",
            "lora",
            "--max_steps",
            "1",
            "--auto_gptq",
            "torch",
            "--target_modules",
            "q_proj",
            "v_proj",
            "--save_model_dir",
            str(tmp_path / "run" / "final"),
        )
    )
    loaded = load_for_inference(str(tmp_path / "run" / "final"))
    assert "peft_gptq" in loaded.description and "LORA" in loaded.description
    _loglikelihoods_match(loaded)
