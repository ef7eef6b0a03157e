"""End to end through the training pipeline: LoRA, prompt tuning, full tuning, saving, resuming."""

import json

import pytest
import torch

from tuning_core.pipeline import run_training

from .helpers import cli, losses, train_args, with_steps


def _first_last(out):
    values = [v for _, v in losses(out)]
    return values[0], values[-1]


@pytest.fixture(scope="module")
def lora_run(tiny_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--peft_method",
            "lora",
            "--r",
            "8",
            "--lora_alpha",
            "16",
            "--target_modules",
            "q_proj",
            "v_proj",
            "--save_model_dir",
            out / "final",
            steps=8,
        )
    )
    return out, result


def test_lora_trains_and_loss_falls(lora_run):
    out, _ = lora_run
    first, last = _first_last(out)
    assert last < first


def test_lora_adapter_loads_with_plain_peft(lora_run, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, result = lora_run
    final = out / "final"
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(final)
    assert tok.pad_token is not None  # the pad token training added is saved with the adapter
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    base.resize_token_embeddings(len(tok))
    model = PeftModel.from_pretrained(base, final).eval()
    trained = result.trainer.model.eval()
    ids = tok("### Text: my flight was late\n\n### Label:", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, trained(ids).logits, rtol=1e-4, atol=1e-4)
    cfg = json.loads((final / "adapter_config.json").read_text())
    assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]


def test_no_checkpoints_with_save_strategy_no(lora_run):
    out, _ = lora_run
    assert not list(out.glob("checkpoint-*"))
    assert not list(out.parent.glob(".final.staging*"))


def test_prompt_tuning_trains_and_saves(tiny_llama, twitter_data, tmp_path):
    from peft import PeftConfig

    run_training(
        train_args(
            tiny_llama,
            twitter_data,
            tmp_path,
            "--peft_method",
            "pt",
            "--num_virtual_tokens",
            "4",
            "--prompt_tuning_init",
            "TEXT",
            "--prompt_tuning_init_text",
            "Classify if the tweet is a complaint or not:",
            "--save_model_dir",
            tmp_path / "final",
            steps=6,
            lr="3e-2",
        )
    )
    first, last = _first_last(tmp_path)
    assert last < first
    cfg = PeftConfig.from_pretrained(tmp_path / "final")
    assert cfg.peft_type.value == "PROMPT_TUNING" and cfg.num_virtual_tokens == 4


def test_full_finetune_gptbigcode_saves_loadable_model(tiny_gptbigcode, twitter_data, tmp_path):
    from transformers import AutoModelForCausalLM

    run_training(
        train_args(
            tiny_gptbigcode,
            twitter_data,
            tmp_path,
            "--peft_method",
            "None",
            "--save_model_dir",
            tmp_path / "final",
            steps=6,
            lr="1e-3",
        )
    )
    first, last = _first_last(tmp_path)
    assert last < first
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    assert type(model).__name__ == "GPTBigCodeForCausalLM"


def test_lora_all_linear_on_gptbigcode(tiny_gptbigcode, twitter_data, tmp_path):
    result = run_training(
        train_args(
            tiny_gptbigcode,
            twitter_data,
            tmp_path,
            "--peft_method",
            "lora",
            "--target_modules",
            "lm_head",
            "all-linear",
            steps=2,
        )
    )
    names = {n.split(".")[-1] for n, m in result.trainer.model.named_modules() if hasattr(m, "lora_A")}
    assert names == {"c_attn", "c_proj", "c_fc"}  # all-linear wins; lm_head is not adapted


def test_resume_continues_from_latest_checkpoint(tiny_llama, twitter_data, tmp_path):
    args = train_args(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--peft_method",
        "lora",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        steps=6,
    )
    run_training(args[:])
    assert (tmp_path / "checkpoint-6" / "checkpoint_complete.json").is_file()
    result = run_training(with_steps(args, 9))
    assert result.resumed_from.endswith("checkpoint-6")
    assert [s for s, _ in losses(tmp_path)] == list(range(1, 10))


def test_resume_false_starts_over(tiny_llama, twitter_data, tmp_path):
    args = train_args(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--peft_method",
        "lora",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        steps=2,
    )
    run_training(args)
    result = run_training(args + ["--resume_from_checkpoint", "False"])
    assert result.resumed_from is None and result.trainer.state.global_step == 2


def test_interrupted_checkpoint_is_never_resumed(tiny_llama, twitter_data, tmp_path):
    args = train_args(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--peft_method",
        "lora",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        steps=2,
    )
    run_training(args)
    broken = tmp_path / "checkpoint-4"  # what a kill in the middle of a save leaves behind
    broken.mkdir()
    (broken / "adapter_model.safetensors").write_bytes(b"half")
    result = run_training(with_steps(args, 3))
    assert result.resumed_from.endswith("checkpoint-2")


def test_cli_train_end_to_end_with_json_config(tiny_llama, twitter_data, tmp_path):
    cfg = {
        "model_name_or_path": str(tiny_llama),
        "training_data_path": str(twitter_data),
        "output_dir": str(tmp_path / "o"),
        "dataset_text_field": "output",
        "response_template": "\n### Label:",
        "peft_method": "lora",
        "r": 4,
        "target_modules": ["q_proj"],
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "save_strategy": "no",
        "save_model_dir": str(tmp_path / "final"),
    }
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    proc = cli("train", "--config", tmp_path / "c.json", "--logging_steps", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "***** tuning-core *****" in proc.stdout
    assert (tmp_path / "final" / "adapter_model.safetensors").is_file()
    assert len(losses(tmp_path / "o")) == 2
