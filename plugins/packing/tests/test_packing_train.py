"""End to end through the core's training pipeline in one process."""

import shutil
from pathlib import Path

import pytest

from tuning_core.pipeline import run_training
from tuning_core.testing.training import logged_values, read_jsonl, train_argv

pytestmark = pytest.mark.slow


def _args(model, data, out, *extra, steps=4, batch=8):
    return train_argv(model, data, out, "--torch_dtype", "float32", *extra, steps=steps, batch=batch)


_losses = logged_values


def _token_log(out):
    return read_jsonl(Path(out) / "packing_tokens.jsonl")


def test_padding_free_training_follows_the_padded_run(tiny_llama, twitter_data, tmp_path):
    # Same seed, same sampler, same batches: only the collation differs, so every step's loss must agree.
    run_training(_args(tiny_llama, twitter_data, tmp_path / "padded"))
    result = run_training(_args(tiny_llama, twitter_data, tmp_path / "free", "--padding_free", "huggingface"))
    assert any("PaddingFreeCollator" in line for line in result.banner)
    padded, free = _losses(tmp_path / "padded"), _losses(tmp_path / "free")
    assert len(padded) == len(free) == 4
    assert padded == pytest.approx(free, rel=1e-5, abs=1e-6)
    assert free[-1] < free[0]


def test_multipack_epoch_uses_every_example_once_as_planned(tiny_llama, twitter_data, tmp_path):
    result = run_training(
        _args(
            tiny_llama,
            twitter_data,
            tmp_path,
            "--padding_free",
            "--multipack",
            "1",
            "--max_steps",
            "-1",
            "--num_train_epochs",
            "1",
            "--logging_steps",
            "5",
        )
    )
    sampler = result.trainer.sampler_spec.sampler
    rows = _token_log(tmp_path)
    assert [r["micro_batch"] for r in rows] == list(range(len(sampler)))
    assert all(r["tokens"] == r["planned_tokens"] for r in rows)
    assert sum(r["sequences"][0] for r in rows) == len(result.trainer.train_dataset)
    assert sum(r["tokens"][0] for r in rows) == int(sampler.lengths.sum())


def test_multipack_resume_continues_with_the_same_batches_and_losses(tiny_llama, twitter_data, tmp_path):
    args = _args(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--padding_free",
        "--multipack",
        "--max_steps",
        "6",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--gradient_accumulation_steps",
        "2",
    )
    run_training(args)
    straight_losses, straight_rows = _losses(tmp_path), _token_log(tmp_path)
    shutil.rmtree(tmp_path / "checkpoint-6")
    result = run_training(args)  # resumes from checkpoint-3
    assert result.resumed_from and result.resumed_from.endswith("checkpoint-3")
    resumed_rows = _token_log(tmp_path)[len(straight_rows) :]
    assert resumed_rows == straight_rows[6:]  # micro-batches 6..11 (3 steps x 2 accumulated) again, same tokens
    resumed_losses = _losses(tmp_path)[len(straight_losses) :]
    assert resumed_losses == pytest.approx(straight_losses[3:], rel=1e-5)
