"""Activated LoRA: trains, acts only after the invocation, loads with plain peft, served by infer, never merged."""

import json

import pytest
import torch

from tuning_core.cli import main
from tuning_core.pipeline import run_training

from .helpers import losses, train_args

INVOCATION = "### Label:"
PROMPT = "### Text: my flight was late and nobody told me why\n\n### Label:"


@pytest.fixture(scope="module")
def alora_run(tiny_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("alora")
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--peft_method",
            "alora",
            "--alora_invocation_string",
            INVOCATION,
            "--r",
            "8",
            "--lora_alpha",
            "16",
            "--target_modules",
            "q_proj",
            "k_proj",
            "v_proj",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--save_model_dir",
            out / "final",
            steps=8,
            lr="1e-2",
        )
    )
    return out, result


def test_alora_loss_falls_and_no_intermediate_checkpoints(alora_run):
    out, result = alora_run
    values = [v for _, v in losses(out)]
    assert values[-1] < values[0]
    assert not list(out.glob("checkpoint-*"))  # save_strategy reset to no, as fms-hf-tuning does
    cfg = json.loads((out / "final" / "adapter_config.json").read_text())
    tok = result.trainer.processing_class
    assert cfg["alora_invocation_tokens"] == tok.encode(INVOCATION, add_special_tokens=False)


def test_adapter_changes_outputs_only_after_the_invocation(alora_run, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, result = alora_run
    final = out / "final"
    tok = AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    ids = tok(PROMPT + " complaint", return_tensors="pt").input_ids
    with torch.no_grad():
        want = base(ids).logits
        model = PeftModel.from_pretrained(base, final).eval()  # plain peft
        got = model(ids).logits
        trained = result.trainer.model.eval()(ids).logits
    torch.testing.assert_close(got, trained, rtol=1e-4, atol=1e-4)
    inv = tok.encode(INVOCATION, add_special_tokens=False)
    row = ids[0].tolist()
    start = max(j for j in range(len(row) - len(inv) + 1) if row[j : j + len(inv)] == inv)
    # Before the invocation the adapter is off: the base model's logits exactly.
    torch.testing.assert_close(got[0, :start], want[0, :start], rtol=1e-5, atol=1e-5)
    assert (got[0, start + len(inv) :] - want[0, start + len(inv) :]).abs().max() > 1e-3


def test_infer_serves_alora_and_refuses_input_without_invocation(alora_run, tmp_path, capsys):
    out, _ = alora_run
    result_file = tmp_path / "res.json"
    assert (
        main(
            [
                "infer",
                "--model",
                str(out / "final"),
                "--text",
                PROMPT,
                "--max_new_tokens",
                "3",
                "--out_file",
                str(result_file),
            ]
        )
        == 0
    )
    assert json.loads(result_file.read_text())[0]["output"].startswith("### Text:")
    assert (
        main(
            [
                "infer",
                "--model",
                str(out / "final"),
                "--text",
                "### Text: no invocation here",
                "--out_file",
                str(tmp_path / "no.json"),
            ]
        )
        == 1
    )
    assert "lacks the aLoRA invocation" in capsys.readouterr().err
    assert not (tmp_path / "no.json").exists()


def test_merge_refuses_alora(alora_run, tmp_path, capsys):
    out, _ = alora_run
    assert main(["merge", "--model", str(out / "final"), "--output_dir", str(tmp_path / "merged")]) == 1
    assert "is an Activated LoRA" in capsys.readouterr().err


def test_alora_needs_save_model_dir(tiny_llama, twitter_data, tmp_path):
    from tuning_core.errors import ConfigError

    with pytest.raises(ConfigError, match="pass --save_model_dir"):
        run_training(
            train_args(
                tiny_llama, twitter_data, tmp_path, "--peft_method", "alora", "--alora_invocation_string", INVOCATION
            )
        )
