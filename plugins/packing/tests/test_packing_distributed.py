"""Two real processes (torchrun, gloo on CPU) training through `python -m tuning_core.sft_trainer`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuning_core.pipeline import run_training

pytestmark = pytest.mark.slow


def _args(model, data, out, accumulation):
    return [
        "--model_name_or_path",
        str(model),
        "--training_data_path",
        str(data),
        "--output_dir",
        str(out),
        "--dataset_text_field",
        "output",
        "--response_template",
        "\\n### Label:",
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--gradient_accumulation_steps",
        str(accumulation),
        "--learning_rate",
        "3e-3",
        "--logging_steps",
        "1",
        "--seed",
        "0",
        "--disable_tqdm",
        "true",
        "--torch_dtype",
        "float32",
        "--padding_free",
        "huggingface",
        "--multipack",
        "2",
        "--use_cpu",
        "true",
    ]  # without it, CPU processes do not form a gloo group


def _jsonl(path):
    return [json.loads(line) for line in open(path)]


@pytest.fixture(scope="module")
def two_process_run(tiny_llama, twitter_data, tmp_path_factory):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path_factory.mktemp("ddp")
    env = dict(os.environ, TUNING_CORE_PLUGINS="packing", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "tuning_core.sft_trainer",
            *_args(tiny_llama, twitter_data, out, accumulation=1),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out, done


def test_per_rank_tokens_match_the_plan_and_ranks_stay_in_step(two_process_run):
    out, _ = two_process_run
    rows = _jsonl(out / "packing_tokens.jsonl")
    assert rows and [r["micro_batch"] for r in rows] == list(range(len(rows)))
    for r in rows:
        assert len(r["tokens"]) == 2 and r["tokens"] == r["planned_tokens"]
        assert r["step"][0] == r["step"][1] == r["micro_batch"] + 1  # both ranks on the same optimizer step
    tokens = [r["tokens"] for r in rows]
    assert sum(max(t) for t in tokens) / sum(sum(t) / 2 for t in tokens) <= 1.05  # tiny data, 4 examples/bin
    assert sum(sum(r["sequences"]) for r in rows) == 240  # the whole bundled dataset, once


def test_only_rank_zero_writes_logs_and_checkpoints(two_process_run):
    out, done = two_process_run
    losses = [r for r in _jsonl(out / "training_logs.jsonl") if r["name"] == "training_loss"]
    steps = [r["data"]["step"] for r in losses]
    assert steps == list(range(1, len(steps) + 1))  # one line per step: rank 1 did not write too
    checkpoints = sorted(p.name for p in out.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{len(steps)}"]
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".jsonl")) == [
        "packing_tokens.jsonl",
        "training_logs.jsonl",
    ]
    assert done.stdout.count("***** tuning-core *****") == 1  # the banner, from rank 0 only


def test_two_processes_train_like_one_process_accumulating_both_bins(
    two_process_run, tiny_llama, twitter_data, tmp_path
):
    # --multipack 2 plans the same 2-bin steps either way: one micro-batch per process, or both bins
    # in one process with gradient accumulation 2. The loss is normalised by the step's total tokens in both.
    out, _ = two_process_run
    run_training(_args(tiny_llama, twitter_data, tmp_path, accumulation=2))
    ddp = [r["data"]["value"] for r in _jsonl(out / "training_logs.jsonl") if r["name"] == "training_loss"]
    single = [r["data"]["value"] for r in _jsonl(tmp_path / "training_logs.jsonl") if r["name"] == "training_loss"]
    assert len(ddp) == len(single) > 10
    assert ddp == pytest.approx(single, rel=1e-4)
