"""Helpers for multi-process tests: launch commands, free ports, shared flags, reading outputs.

Every multi-process test runs two processes on CPU (gloo) over the tiny Llama and
compares with one process seeing the same global batch (2 ranks x 2 = 1 x 4).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tuning_core.testing.training import logged, read_jsonl, train_argv

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FSDP_DEFAULTS = ROOT / "fixtures" / "accelerate_fsdp_defaults.yaml"
LAUNCH_TIMEOUT = 1500  # seconds: two processes share two cores with whatever else runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    """A console script of this Python's environment (torchrun, accelerate)."""
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def train_args(model, data, out, *extra, steps=4, per_device=2, save_steps=2):
    """Same flags for every run: constant lr so a 4-step run is the first 4 steps of a 6-step one."""
    return train_argv(
        model,
        data,
        out,
        "--lr_scheduler_type",
        "constant",
        "--save_steps",
        str(save_steps),
        "--dataloader_drop_last",
        "true",
        "--torch_dtype",
        "float32",
        "--bf16",
        "false",
        *extra,
        steps=steps,
        batch=per_device,
        lr="1e-3",
        save_strategy="steps",
    )


def with_flag(args: list, flag: str, value: str) -> list:
    i = args.index(flag)
    return args[: i + 1] + [value] + args[i + 2 :]


def moved(args: list, old, new) -> list:
    """``args`` with every path under ``old`` moved under ``new``."""
    old, new = str(old), str(new)
    return [new + a[len(old) :] if a == old or a.startswith(old + os.sep) else a for a in map(str, args)]


jsonl = read_jsonl
logged_losses = logged


def probes(probe_dir) -> list[dict]:
    return [
        json.loads((Path(probe_dir) / f"rank{i}.json").read_text())
        for i in range(len(list(Path(probe_dir).glob("rank*.json"))))
    ]


def load_weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def run_launcher(cmd: list, env: dict, timeout: int = LAUNCH_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout, cwd=str(ROOT)
    )


def torchrun(*args) -> list:
    return [
        tool("torchrun"),
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *args,
    ]


def accelerate_launch(*args) -> list:
    return [tool("accelerate"), "launch", *args]


def describe(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-6000:]}"
