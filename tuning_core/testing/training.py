"""Test helpers for training runs: one argv builder and one reader of what a run logged.

argv = train_argv(model_dir, data_path, out, "--peft_method", "lora", steps=2)
run_training(argv)
logged(out)                       # [(step, loss)] of training_loss
logged(out, "validation_loss")    # another series
"""

from __future__ import annotations

import json
from pathlib import Path

# The bundled twitter-complaints-style data: train on the label after the response template.
TEXT_FIELD_ARGS = ["--dataset_text_field", "output", "--response_template", "\\n### Label:"]
LOG_FILE = "training_logs.jsonl"


def train_argv(
    model, data, out, *extra, steps: int = 6, batch: int = 8, lr: str = "3e-3", save_strategy: str = "no"
) -> list[str]:
    """A short, seeded, logged-every-step run on the bundled data; ``extra`` flags come last and win."""
    return [
        "--model_name_or_path",
        str(model),
        "--training_data_path",
        str(data),
        "--output_dir",
        str(out),
        *TEXT_FIELD_ARGS,
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(batch),
        "--learning_rate",
        str(lr),
        "--logging_steps",
        "1",
        "--save_strategy",
        save_strategy,
        "--seed",
        "0",
        "--disable_tqdm",
        "true",
        *map(str, extra),
    ]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def training_logs(out) -> list[dict]:
    """Every row of ``OUT/training_logs.jsonl``: {"name", "data": {"epoch", "step", "value"}, "timestamp"}."""
    return read_jsonl(Path(out) / LOG_FILE)


def logged(out, name: str = "training_loss") -> list[tuple[int, float]]:
    """(step, value) of one logged series, in order."""
    return [(r["data"]["step"], r["data"]["value"]) for r in training_logs(out) if r["name"] == name]


def logged_values(out, name: str = "training_loss") -> list[float]:
    return [value for _, value in logged(out, name)]
