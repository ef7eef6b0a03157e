"""A data config through a real (tiny) training run: mixed datasets, and a streamed one with --max_steps."""

import json

import pytest
import yaml

from tuning_core.pipeline import run_training

from .helpers import write_jsonl

ROWS = [
    {"input": f"### Input: tweet {i}\n\n### Label:", "output": " complaint" if i % 2 else " no complaint"}
    for i in range(16)
]


def run_args(model, cfg, out, steps=2):
    return [
        "--model_name_or_path",
        str(model),
        "--data_config_path",
        str(cfg),
        "--output_dir",
        str(out),
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--seed",
        "0",
        "--disable_tqdm",
        "true",
    ]


@pytest.mark.parametrize("streaming", [False, True])
def test_training_on_a_data_config(tiny_llama, tmp_path, plugins_enabled, streaming):
    plugins_enabled()
    a = write_jsonl(tmp_path / "a.jsonl", ROWS)
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": f"plain text {i}"} for i in range(16)])
    handlers = [{"name": "tokenize", "arguments": {"fn_kwargs": {"text_column_name": "text"}}}]
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "dataprocessor": {"streaming": streaming, "seed": 1},
                "datasets": [
                    {"name": "a", "data_paths": [str(a)], "sampling": 0.5},
                    {"name": "b", "data_paths": [str(b)], "sampling": 0.5, "data_handlers": handlers},
                ],
            }
        )
    )
    result = run_training(run_args(tiny_llama, cfg, tmp_path / "out"))
    assert result.train_output.global_step == 2
    line = next(x for x in result.banner if "data format" in x)
    assert "input_output+pretokenized" in line and (("streamed" in line) == streaming)
    logs = [json.loads(x) for x in (tmp_path / "out" / "training_logs.jsonl").read_text().splitlines()]
    assert sum(r["name"] == "training_loss" for r in logs) == 2
