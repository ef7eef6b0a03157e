"""`tuning-core merge`: the merged model computes what adapter + base computes."""

import json

import torch

from tuning_core.cli import main


def batch_logits(model, tokenizer, prompts):
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**enc).logits, enc["attention_mask"].bool()


def test_merged_logits_match_adapter_plus_base(lora_adapter, tmp_path, builtin_plugins_only, prompts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, reference = lora_adapter
    out = tmp_path / "merged"
    assert main(["merge", "--model", str(adapter_dir), "--output_dir", str(out)]) == 0

    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token == "<pad>" and merged.config.vocab_size == len(tok)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"

    got, mask = batch_logits(merged, tok, prompts)
    want, _ = batch_logits(reference, tok, prompts)
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-4)
    with reference.disable_adapter():
        base_only, _ = batch_logits(reference, tok, prompts)
    assert (got[mask] - base_only[mask]).abs().max() > 1e-3  # merging changed the weights


def test_merge_with_base_override_and_untouched_adapter(
    moved_adapter, tiny_llama, tmp_path, builtin_plugins_only, capsys
):
    config_before = (moved_adapter / "adapter_config.json").read_bytes()
    out = tmp_path / "merged"
    assert main(["merge", "--model", str(moved_adapter), "--output_dir", str(out)]) == 1
    assert "pass --base_model_name_or_path" in capsys.readouterr().err
    assert not out.exists()
    assert (
        main(
            [
                "merge",
                "--model",
                str(moved_adapter),
                "--output_dir",
                str(out),
                "--base_model_name_or_path",
                str(tiny_llama),
            ]
        )
        == 0
    )
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert (moved_adapter / "adapter_config.json").read_bytes() == config_before


def test_merge_refusals(pt_adapter, lora_adapter, tiny_llama, tmp_path, builtin_plugins_only, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    cases = [
        (["--model", str(pt_adapter[0]), "--output_dir", str(tmp_path / "a")], "PROMPT_TUNING adapter"),
        (["--model", str(tiny_llama), "--output_dir", str(tmp_path / "b")], "is not an adapter"),
        (["--model", str(lora_adapter[0]), "--output_dir", str(occupied)], "already exists and is not empty"),
        (["--model", str(lora_adapter[0]), "--output_dir", str(lora_adapter[0])], "adapter or base model"),
    ]
    for argv, needle in cases:
        assert main(["merge", *argv]) == 1, argv
        assert needle in capsys.readouterr().err
    assert (occupied / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
