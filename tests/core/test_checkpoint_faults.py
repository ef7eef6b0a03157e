"""A save killed at any one of its file writes never leaves a checkpoint that is marked but broken.

Faults are injected at each write event of a save (tuning_core/testing/faults.py), not by timing:
in-process (SimulatedKill) for the sweeps, in a subprocess with os._exit for the CLI repro.
"""

import shutil
import subprocess
import sys

import pytest

from tuning_core.checkpoints import COMPLETE_MARKER, is_complete, latest_complete_checkpoint
from tuning_core.pipeline import resolve_resume, run_training
from tuning_core.testing.faults import SimulatedKill, write_faults

from .helpers import cli, train_args, with_steps

LORA_FILES = {
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    COMPLETE_MARKER,
    "optimizer.pt",
    "rng_state.pth",
    "scheduler.pt",
    "tokenizer.json",
    "tokenizer_config.json",
    "trainer_state.json",
    "training_args.bin",
}


def _args(model, data, out, steps, *extra):
    return train_args(
        model,
        data,
        out,
        "--peft_method",
        "lora",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        *extra,
        steps=steps,
        batch=2,
    )


def _assert_intact(out):
    """Every marked checkpoint holds the whole file set, and its trainer state is the step in its name."""
    import json

    for ckpt in out.glob("checkpoint-*"):
        if is_complete(ckpt):
            assert {p.name for p in ckpt.iterdir()} == LORA_FILES, ckpt
            state = json.loads((ckpt / "trainer_state.json").read_text())
            assert f"checkpoint-{state['global_step']}" == ckpt.name
            assert (ckpt / "adapter_model.safetensors").stat().st_size > 100


def test_rewrite_of_a_marked_checkpoint_killed_at_every_write(tiny_llama, twitter_data, tmp_path):
    """Issue 16.1: a rerun with --resume_from_checkpoint False rewrites checkpoint-1 over its old marker."""

    def args_for(out, steps):
        return _args(tiny_llama, twitter_data, out, steps)

    base, probe = tmp_path / "base", tmp_path / "probe"
    run_training(args_for(base, 3))
    shutil.copytree(base, probe)
    with write_faults(probe) as recorder:  # a clean run, to learn the save's write events
        run_training(args_for(probe, 1) + ["--resume_from_checkpoint", "False"])
    first = recorder.events
    assert ("unlink", "checkpoint-1/" + COMPLETE_MARKER) == first[0]  # the stale marker goes before any write
    written = {name.split("/", 1)[1] for kind, name in first if kind in ("write", "rename")}
    assert LORA_FILES - {"tokenizer.json"} <= written  # every file of the save is a kill point (tokenizer: its save)
    for k in range(1, len(first) + 1):
        out = tmp_path / f"k{k}"
        shutil.copytree(base, out)
        with pytest.raises(SimulatedKill), write_faults(out, at=k, half=True):
            run_training(args_for(out, 3) + ["--resume_from_checkpoint", "False"])
        _assert_intact(out)
        assert is_complete(out / "checkpoint-1") == (k == 1)  # killed before the old marker went: untouched
        expected = latest_complete_checkpoint(out)
        assert expected.name == "checkpoint-3"
        assert resolve_resume(None, str(out)) == str(expected)
        if k in (1, 3, len(first) - 1):  # before the unlink, mid-save (half a model file), before the marker
            result = run_training(args_for(out, 4))
            assert result.resumed_from == str(expected)
            assert result.trainer.state.global_step == 4
            _assert_intact(out)


def test_rotation_killed_at_every_write_keeps_a_complete_checkpoint(tiny_llama, twitter_data, tmp_path):
    """Issue 16.2: with save_total_limit 1 the old checkpoint goes only after the new one is marked."""

    def args_for(out, steps):
        return _args(tiny_llama, twitter_data, out, steps, "--save_total_limit", "1")

    probe = tmp_path / "probe"
    with write_faults(probe) as recorder:
        run_training(args_for(probe, 2))
    events = recorder.events
    second = events[events.index(("rename", "checkpoint-1/" + COMPLETE_MARKER)) + 1 :]
    assert second[-1] == ("rmtree", "checkpoint-1")  # rotation is the save's last act, after the marker
    assert second[-2] == ("rename", "checkpoint-2/" + COMPLETE_MARKER)
    skip = len(events) - len(second)
    for k in range(1, len(second) + 1):
        out = tmp_path / f"k{k}"
        with pytest.raises(SimulatedKill), write_faults(out, at=skip + k, half=True):
            run_training(args_for(out, 2))
        _assert_intact(out)
        intact = latest_complete_checkpoint(out)
        assert intact is not None, f"kill at {second[k - 1]} left no complete checkpoint"
        assert resolve_resume(None, str(out)) == str(intact)
        if k in (1, 2, len(second) - 1, len(second)):  # before the new save, before the marker, before rotation
            result = run_training(args_for(out, 3))
            assert result.resumed_from == str(intact) and result.trainer.state.global_step == 3
            assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]


def test_cli_rerun_after_sigkill_resumes_from_last_intact_checkpoint(tiny_llama, twitter_data, tmp_path):
    """The issue's repro through the real CLI: killed (os._exit) while checkpoint-3 is rewritten, half a file."""
    args = _args(tiny_llama, twitter_data, tmp_path, 3)
    assert cli("train", *args).returncode == 0
    rerun = with_steps(args, 6) + ["--resume_from_checkpoint", "False"]
    with write_faults(tmp_path) as recorder:  # where checkpoint-3's model file is written, counted in-process
        run_training(with_steps(args, 3) + ["--resume_from_checkpoint", "False"])
    at = recorder.events.index(("write", "checkpoint-3/adapter_model.safetensors")) + 1
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_core.testing.faults",
            str(tmp_path),
            str(at),
            "exit",
            "1",
            "--",
            "train",
            *rerun,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert not is_complete(tmp_path / "checkpoint-3")
    again = cli("train", *with_steps(args, 4))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from {tmp_path / 'checkpoint-2'}" in again.stdout
    assert is_complete(tmp_path / "checkpoint-4")
