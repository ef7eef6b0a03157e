"""Train a LoRA adapter with `run_training`, then infer, merge and report on what it saved."""

import json

import pytest
import torch

from tuning_core.cli import main

pytestmark = pytest.mark.slow


def test_train_then_infer_merge_report(tiny_llama, twitter_data, tmp_path, builtin_plugins_only, capsys):
    import matplotlib.image
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuning_core.infer import load_for_inference
    from tuning_core.pipeline import run_training

    out, adapter = tmp_path / "out", tmp_path / "adapter"
    result = run_training(
        [
            "--model_name_or_path",
            str(tiny_llama),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(out),
            "--save_model_dir",
            str(adapter),
            "--response_template",
            "\n### Label:",
            "--dataset_text_field",
            "output",
            "--peft_method",
            "lora",
            "--r",
            "4",
            "--lora_alpha",
            "16",
            "--per_device_train_batch_size",
            "4",
            "--max_steps",
            "4",
            "--logging_steps",
            "1",
            "--learning_rate",
            "5e-2",
            "--save_strategy",
            "no",
        ]
    )
    trained = result.trainer.model.eval()
    prompt = "### Text: my parcel never arrived\n\n### Label:"

    # The saved adapter reproduces the trained model; the pad token reused an existing one (no new row).
    loaded = load_for_inference(str(adapter))
    assert len(loaded.tokenizer) == len(AutoTokenizer.from_pretrained(tiny_llama))
    assert loaded.tokenizer.pad_token is not None
    ids = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        want = trained(**ids).logits
        got = loaded.model(**ids).logits
        with trained.disable_adapter():
            base_only = trained(**ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (want - base_only).abs().max() > 1e-4  # training moved the adapter away from zero

    texts = tmp_path / "texts.txt"
    texts.write_text(prompt.replace("\n", " ") + "\n### Text: thanks for the quick fix ### Label:\n")
    results_file = tmp_path / "results.json"
    assert (
        main(
            [
                "infer",
                "--model",
                str(adapter),
                "--text_file",
                str(texts),
                "--max_new_tokens",
                "4",
                "--out_file",
                str(results_file),
            ]
        )
        == 0
    )
    results = json.loads(results_file.read_text())
    assert len(results) == 2 and all(r["output"].startswith(r["input"]) for r in results)

    merged_dir = tmp_path / "merged"
    assert main(["merge", "--model", str(adapter), "--output_dir", str(merged_dir)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**ids).logits, want, rtol=1e-4, atol=1e-4)

    assert main(["report", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "training loss: 4 values over steps 1-4" in summary
    img = matplotlib.image.imread(out / "loss_curves.png")
    assert img.shape[:2] == (450, 800) and (img[..., :3] < 0.9).any(axis=-1).mean() > 0.01
