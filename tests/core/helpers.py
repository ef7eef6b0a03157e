"""Small helpers for the core's end-to-end tests."""

import json
import subprocess
import sys
from pathlib import Path

TEXT_FIELD_ARGS = ["--dataset_text_field", "output", "--response_template", "\\n### Label:"]


def train_args(model, data, out, *extra, steps=6, batch=8, lr="3e-3"):
    return ["--model_name_or_path", str(model), "--training_data_path", str(data), "--output_dir", str(out),
            *TEXT_FIELD_ARGS, "--max_steps", str(steps), "--per_device_train_batch_size", str(batch),
            "--learning_rate", lr, "--logging_steps", "1", "--save_strategy", "no", "--seed", "0",
            "--disable_tqdm", "true", *extra]


def losses(out) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in open(Path(out) / "training_logs.jsonl")]
    return [(r["data"]["step"], r["data"]["value"]) for r in rows if r["name"] == "training_loss"]


def cli(*args, env=None, timeout=600):
    """Run `python -m tuning_core ARGS` in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "tuning_core", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def with_steps(args: list, steps: int) -> list:
    """The same arguments with another --max_steps."""
    i = args.index("--max_steps")
    return args[:i + 1] + [str(steps)] + args[i + 2:]
