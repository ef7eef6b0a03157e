"""`tuning-core infer`: adapters and full models load correctly, batching is exact, nothing on disk changes."""

import hashlib
import json

import pytest
import torch

from tuning_core.cli import main
from tuning_core.errors import UserError
from tuning_core.infer import _batches, generate, load_for_inference


def logits(model, tokenizer, text="### Text: where is my parcel"):
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def tree_digest(path):
    """Content and metadata of every file under ``path``."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size)
    return out


def test_lora_adapter_loads_onto_resized_base(lora_adapter, tiny_llama, builtin_plugins_only):
    adapter_dir, reference = lora_adapter
    loaded = load_for_inference(str(adapter_dir))
    assert loaded.checkpoint.base == str(tiny_llama)
    assert loaded.tokenizer.pad_token == "<pad>"  # the adapter's tokenizer, not the base's
    assert loaded.model.get_input_embeddings().weight.shape[0] == len(loaded.tokenizer)
    got = logits(loaded.model, loaded.tokenizer)
    want = logits(reference, loaded.tokenizer)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with reference.disable_adapter():
        base_only = logits(reference, loaded.tokenizer)
    assert (got - base_only).abs().max() > 1e-3  # the adapter really is applied
    assert "LORA" in loaded.description and "builtin.model_loader" in loaded.description


def test_batched_generation_matches_one_at_a_time(lora_adapter, builtin_plugins_only, prompts):
    adapter_dir, _ = lora_adapter
    loaded = load_for_inference(str(adapter_dir))
    batched = generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=8, batch_size=4)
    single = [generate(loaded.model, loaded.tokenizer, [p], max_new_tokens=8)[0] for p in prompts]
    assert batched == single
    assert all(out.startswith(prompt) for out, prompt in zip(batched, prompts, strict=False))
    assert any(len(out) > len(prompt) for out, prompt in zip(batched, prompts, strict=False))
    assert loaded.tokenizer.padding_side == "left"


def test_prompt_tuning_adapter(pt_adapter, builtin_plugins_only, prompts):
    adapter_dir, reference = pt_adapter
    loaded = load_for_inference(str(adapter_dir))
    assert loaded.checkpoint.peft_type == "PROMPT_TUNING"
    torch.testing.assert_close(
        logits(loaded.model, loaded.tokenizer), logits(reference, loaded.tokenizer), rtol=1e-5, atol=1e-5
    )
    texts = prompts + prompts[:2]  # repeated texts share a batch: same length, no padding
    assert max(len(b) for b in _batches(loaded.model, loaded.tokenizer, texts, 4)) == 2
    batched = generate(loaded.model, loaded.tokenizer, texts, max_new_tokens=6, batch_size=4)
    single = [generate(loaded.model, loaded.tokenizer, [p], max_new_tokens=6)[0] for p in texts]
    assert batched == single
    assert all(out.startswith(prompt) for out, prompt in zip(batched, texts, strict=False))


def test_full_model(tiny_llama, builtin_plugins_only):
    from transformers import AutoModelForCausalLM

    loaded = load_for_inference(str(tiny_llama))
    assert not loaded.checkpoint.is_adapter
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    torch.testing.assert_close(logits(loaded.model, loaded.tokenizer), logits(reference, loaded.tokenizer))


def test_cli_writes_results_json(pt_adapter, tmp_path, builtin_plugins_only, capsys, prompts):
    adapter_dir, _ = pt_adapter
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(prompts[:3]) + "\n\n")
    out = tmp_path / "result.json"
    rc = main(
        [
            "infer",
            "--model",
            str(adapter_dir),
            "--text_file",
            str(texts),
            "--max_new_tokens",
            "5",
            "--out_file",
            str(out),
            "--batch_size",
            "2",
        ]
    )
    assert rc == 0
    results = json.loads(out.read_text())
    assert [r["input"] for r in results] == prompts[:3]  # the blank line is skipped
    assert all(set(r) == {"input", "output"} and r["output"].startswith(r["input"]) for r in results)
    assert "wrote 3 result(s)" in capsys.readouterr().out

    rc = main(["infer", "--model", str(adapter_dir), "--text", prompts[0], "--out_file", str(out)])
    assert rc == 0 and len(json.loads(out.read_text())) == 1


def test_moved_adapter_needs_base_override_and_files_stay_untouched(
    moved_adapter, lora_adapter, tiny_llama, tmp_path, builtin_plugins_only, capsys, prompts
):
    before = tree_digest(moved_adapter)
    out = tmp_path / "r.json"
    rc = main(["infer", "--model", str(moved_adapter), "--text", prompts[0], "--out_file", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "machine-that-trained-it" in err and "pass --base_model_name_or_path" in err
    assert "Traceback" not in err

    rc = main(
        [
            "infer",
            "--model",
            str(moved_adapter),
            "--text",
            prompts[0],
            "--out_file",
            str(out),
            "--base_model_name_or_path",
            str(tiny_llama),
            "--max_new_tokens",
            "6",
        ]
    )
    assert rc == 0
    assert tree_digest(moved_adapter) == before  # adapter_config.json was never rewritten

    original = load_for_inference(str(lora_adapter[0]))
    expected = generate(original.model, original.tokenizer, [prompts[0]], max_new_tokens=6)
    assert json.loads(out.read_text())[0]["output"] == expected[0]


def test_plugin_can_take_over_loading(lora_adapter, tiny_llama, builtin_plugins_only):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuning_core.plugin_api import LoadedModel, hookimpl

    calls = []

    class FakeQuantLoader:
        @hookimpl
        def tuning_core_load_model(self, config, purpose):
            calls.append((purpose, config.model_name_or_path, config.tokenizer_name_or_path))
            model = AutoModelForCausalLM.from_pretrained(config.model_name_or_path, dtype=torch.float32)
            return LoadedModel(model, AutoTokenizer.from_pretrained(config.tokenizer_name_or_path), "fake 4-bit base")

    builtin_plugins_only.register(FakeQuantLoader(), name="fake_quant")
    adapter_dir, reference = lora_adapter
    loaded = load_for_inference(str(adapter_dir))
    assert calls == [("infer", str(tiny_llama), str(adapter_dir))]
    assert loaded.description.startswith("fake 4-bit base (loaded by fake_quant)")
    torch.testing.assert_close(
        logits(loaded.model, loaded.tokenizer), logits(reference, loaded.tokenizer), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "/nonexistent/ckpt", "--text", "x"], "--model /nonexistent/ckpt: no such directory"),
        (["--model", "{base}", "--text_file", "/nonexistent/texts.txt"], "--text_file /nonexistent/texts.txt: no such"),
        (["--model", "{base}", "--text", "x", "--base_model_name_or_path", "{base}"], "only applies to adapters"),
    ],
)
def test_user_errors(argv, needle, tiny_llama, builtin_plugins_only, capsys, tmp_path):
    argv = [a.replace("{base}", str(tiny_llama)) for a in argv]
    rc = main(["infer", *argv, "--out_file", str(tmp_path / "r.json")])
    assert rc == UserError.exit_code
    assert needle in capsys.readouterr().err


def test_bad_numbers_are_rejected_by_the_parser(tiny_llama, builtin_plugins_only, capsys):
    assert main(["infer", "--model", str(tiny_llama), "--text", "x", "--max_new_tokens", "0"]) == 2
    err = capsys.readouterr().err
    assert "expected a positive integer" in err and err.count("\n") == 1  # one line, no usage dump
