"""`tuning-core demo`: build a tiny Llama offline and LoRA-tune it on the bundled dataset."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def run_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tuning-core demo", description=__doc__)
    parser.add_argument("--output_dir", default=None, help="Where to write (default: a new temporary directory).")
    parser.add_argument("--epochs", type=float, default=3, help="Epochs over the 240 bundled examples.")
    args = parser.parse_args(argv)

    if args.output_dir:
        return _demo(Path(args.output_dir), args.epochs, keep=True)
    with tempfile.TemporaryDirectory(prefix="tuning-core-demo-") as tmp:  # removed however the demo ends
        return _demo(Path(tmp), args.epochs, keep=False)


def _demo(out: Path, epochs: float, keep: bool) -> int:
    from tuning_core.pipeline import run_training
    from tuning_core.testing.tiny import build_model, bundled_dataset_path

    model_dir = out / "tiny-llama"
    if not (model_dir / "config.json").exists():
        print(f"building a tiny Llama (random weights) in {model_dir}", flush=True)
        build_model(model_dir, arch="llama", hidden=128, layers=2, heads=4)
    run_training(
        [
            "--model_name_or_path",
            str(model_dir),
            "--training_data_path",
            str(bundled_dataset_path()),
            "--data_formatter_template",
            "### Text: {{Tweet text}}\n\n### Label: {{text_label}}",
            "--response_template",
            "\n### Label:",
            "--output_dir",
            str(out / "run"),
            "--save_model_dir",
            str(out / "run" / "final"),
            "--peft_method",
            "lora",
            "--r",
            "8",
            "--lora_alpha",
            "16",
            "--target_modules",
            "all-linear",
            "--num_train_epochs",
            str(epochs),
            "--per_device_train_batch_size",
            "8",
            "--learning_rate",
            "3e-3",
            "--logging_steps",
            "10",
            "--save_strategy",
            "no",
            "--resume_from_checkpoint",
            "False",
        ]
    )
    losses = [json.loads(line)["data"]["value"] for line in open(out / "run" / "training_logs.jsonl")]
    print(f"\ntraining loss: first {losses[0]:.3f} -> last {losses[-1]:.3f}")
    print(
        f"adapter saved in {out / 'run' / 'final'}"
        if keep
        else "the temporary folder is removed; pass --output_dir to keep the model"
    )
    return 0 if losses[-1] < losses[0] else 1
