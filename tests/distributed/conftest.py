"""Fixtures for multi-process tests: the rank probe plugin, the launch environment, reference runs."""

import os

import pytest

from .helpers import HERE, train_args


@pytest.fixture(scope="session")
def probe_site(tmp_path_factory):
    """A directory that makes tests/distributed/rank_probe_plugin.py an installed `tuning_core` plugin."""
    site = tmp_path_factory.mktemp("probe_site")
    info = site / "tuning_core_rank_probe-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tuning-core-rank-probe\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[tuning_core]\nrank_probe = rank_probe_plugin\n")
    return site


@pytest.fixture(scope="session")
def launch_env(probe_site):
    """Environment for a launched run: only the probe plugin, one thread per process, offline, CPU unless
    ``gpus`` (two processes cannot share one GPU, so CPU tests hide any GPU)."""

    def make(probe_dir, gpus=False, **extra):
        path = os.pathsep.join([str(probe_site), str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env = dict(
            os.environ,
            PYTHONPATH=path,
            TUNING_CORE_PLUGINS="rank_probe",
            RANK_PROBE_DIR=str(probe_dir),
            OMP_NUM_THREADS="1",
            TOKENIZERS_PARALLELISM="false",
            HF_HUB_OFFLINE="1",
        )
        for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU"):
            env.pop(key, None)
        if not gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""
        env.update(extra)
        return env

    return make


@pytest.fixture(scope="session")
def reference_full(tiny_llama, twitter_data, tmp_path_factory):
    """One process, batch 4, full fine-tuning, 6 steps with checkpoints at 2, 4 and 6."""
    from tuning_core.pipeline import run_training
    from tuning_core.testing.plugins import only_plugins

    out = tmp_path_factory.mktemp("reference_full")
    with only_plugins():
        run_training(
            train_args(
                tiny_llama, twitter_data, out, "--peft_method", "None", "--use_cpu", "true", steps=6, per_device=4
            )
        )
    return out
