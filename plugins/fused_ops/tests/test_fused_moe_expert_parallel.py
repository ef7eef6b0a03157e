"""Expert parallelism at the layer level: 2 gloo processes under torchrun, each holding half the experts of a
tiny Mixtral, reproduce the single-process loss and gradients (see moe_ep_worker.py for what is compared)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_with_half_the_experts_each_match_one_process(tmp_path, bpe_tokenizer_dir):
    from tuning_core.testing.tiny import build_model

    model_dir = build_model(
        tmp_path / "mixtral", arch="mixtral", tokenizer_dir=bpe_tokenizer_dir, hidden=32, heads=2, intermediate=48
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(Path(__file__).with_name("moe_ep_worker.py")),
        str(model_dir),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    for rank in (0, 1):
        assert f"rank {rank}: loss" in done.stdout and "gradients match" in done.stdout
