"""DDP with two real processes: `torchrun --nproc_per_node 2 -m tuning_core.sft_trainer`, gloo on CPU.

The flags are those of a single-process run; nothing tells tuning-core it is on a
CPU. A 2 x 2 run must end with the weights of a 1 x 4 run, identical on both
ranks, with one set of outputs written by rank 0, and a resumed run must carry on
from its checkpoint exactly as the uninterrupted single-process run did.
"""

import json
import shutil

import pytest

from .helpers import (
    describe,
    jsonl,
    load_weights,
    logged_losses,
    max_difference,
    moved,
    probes,
    run_launcher,
    torchrun,
    train_args,
    with_flag,
)

pytestmark = pytest.mark.slow
TOL = 1e-5  # float32 sums in another order (two ranks, one thread each) differ by ~1e-6


@pytest.fixture(scope="module")
def ddp_run(tiny_llama, twitter_data, tmp_path_factory, launch_env):
    base = tmp_path_factory.mktemp("ddp")
    out, probe_dir = base / "out", base / "probe"
    args = train_args(tiny_llama, twitter_data, out, "--peft_method", "None", "--save_model_dir", out / "final")
    done = run_launcher(torchrun("-m", "tuning_core.sft_trainer", *args), launch_env(probe_dir))
    assert done.returncode == 0, describe(done)
    return out, probe_dir, args, done


@pytest.fixture(scope="module")
def resumed_run(ddp_run, tmp_path_factory, launch_env):
    out, _, args, _ = ddp_run
    base = tmp_path_factory.mktemp("ddp_resumed")
    resumed, probe_dir = base / "out", base / "probe"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "final")
    args = with_flag(moved(args, out, resumed), "--max_steps", "6")
    done = run_launcher(torchrun("-m", "tuning_core.sft_trainer", *args), launch_env(probe_dir))
    assert done.returncode == 0, describe(done)
    return resumed, probe_dir, done


def test_two_ranks_train_one_model(ddp_run):
    _, probe_dir, _, done = ddp_run
    ranks = probes(probe_dir)
    assert [r["process_index"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["distributed_type"] == "MULTI_CPU" for r in ranks)
    assert all(r["global_step"] == 4 and not r["sharded"] for r in ranks)
    assert ranks[0]["sha256"] == ranks[1]["sha256"]  # bit-identical weights on both ranks
    assert "distributed: DDP over 2 processes (gloo)" in done.stdout
    assert "no GPU in this process: the 2 processes train on CPU over gloo" in done.stdout


def test_weights_equal_single_process_with_the_same_global_batch(ddp_run, reference_full, tiny_llama):
    out, _, _, _ = ddp_run
    initial = load_weights(tiny_llama)
    final = load_weights(out / "final")
    expected = load_weights(reference_full / "checkpoint-4")
    moved = max((final[k][: initial[k].shape[0]] - initial[k]).abs().max().item() for k in initial)
    assert moved > 100 * TOL  # training changed the weights far more than the tolerance
    assert max_difference(final, expected) < TOL
    assert max_difference(load_weights(out / "checkpoint-2"), load_weights(reference_full / "checkpoint-2")) < TOL
    ours, theirs = logged_losses(out), logged_losses(reference_full)[:4]
    assert [s for s, _ in ours] == [s for s, _ in theirs] == [1, 2, 3, 4]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(ours, theirs, strict=False))


def test_only_rank_zero_writes_outputs(ddp_run):
    out, _, _, done = ddp_run
    rows = jsonl(out / "training_logs.jsonl")
    assert [r["data"]["step"] for r in rows] == [1, 2, 3, 4]  # one line per step, not one per rank
    assert rows[0]["data"]["epoch"] == pytest.approx(4 / 240, abs=1e-4)  # a step consumed 2 x 2 examples
    assert done.stdout.count("***** tuning-core *****") == 1
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("README")) == [
        "checkpoint-2",
        "checkpoint-4",
        "final",
        "training_logs.jsonl",
    ]
    assert not list(out.glob(".*staging*"))
    assert (out / "final" / "model.safetensors").is_file()
    for step in (2, 4):
        ckpt = out / f"checkpoint-{step}"
        # Rank 0 writes the model, optimizer and marker; each rank writes its own RNG state.
        assert {
            "model.safetensors",
            "optimizer.pt",
            "checkpoint_complete.json",
            "rng_state_0.pth",
            "rng_state_1.pth",
        } <= {p.name for p in ckpt.iterdir()}
        assert jsonl(ckpt / "checkpoint_complete.json")[0]["step"] == step


def test_resume_continues_at_the_right_step(resumed_run, reference_full):
    out, probe_dir, done = resumed_run
    assert f"resuming from {out / 'checkpoint-4'}" in done.stdout
    assert [s for s, _ in logged_losses(out)] == [1, 2, 3, 4, 5, 6]  # steps 5 and 6 appended once
    assert all(r["global_step"] == 6 for r in probes(probe_dir))
    # Same data order, optimizer state and weights as the uninterrupted single-process run.
    assert max_difference(load_weights(out / "final"), load_weights(reference_full / "checkpoint-6")) < TOL
    ours, theirs = logged_losses(out)[4:], logged_losses(reference_full)[4:]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(ours, theirs, strict=False))


def test_lora_under_torchrun_takes_the_rank_as_lora_r(tiny_llama, twitter_data, tmp_path, launch_env):
    """torchrun's parser reads `--r` as an abbreviation of its own options; `--lora_r` is the same flag."""
    out = tmp_path / "out"
    args = train_args(
        tiny_llama,
        twitter_data,
        out,
        "--peft_method",
        "lora",
        "--lora_r",
        "4",
        "--lora_alpha",
        "8",
        "--save_model_dir",
        out / "final",
        steps=2,
    )
    done = run_launcher(torchrun("-m", "tuning_core.sft_trainer", *args), launch_env(tmp_path / "probe"))
    assert done.returncode == 0, describe(done)
    adapter = json.loads((out / "final" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    assert all(r["world_size"] == 2 for r in probes(tmp_path / "probe"))
