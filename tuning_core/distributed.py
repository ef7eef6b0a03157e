"""Multi-process runs: make a launch real, and refuse one that silently is not.

tuning-core has no distribution layer of its own: `torchrun` or `accelerate launch`
starts the processes and the Trainer (through accelerate) runs DDP or FSDP. This
module covers the gaps between those tools:

* ``prepare_launch``: on a machine without a GPU, transformers does not join the
  process group torchrun set up, so every process trains alone. Called before the
  TrainingArguments exist, it asks accelerate for its CPU (gloo) backend instead.
* ``check_launch``: a launch that asked for N processes but runs with world size 1
  (the case above, `accelerate launch --cpu --num_processes N`, which starts one
  process, or pods started with `python` instead of `torchrun`) is an error.
* ``describe_launch`` / ``prepare_final_save``: the banner line, a warning when
  FSDP was asked for but accelerate did not apply it, and a full (loadable) final
  save whatever state-dict type the FSDP config uses for checkpoints.

Checking an FSDP config file before a launch is `tuning-core check-fsdp` (fsdp_check.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_core.errors import ConfigError, UserError

log = logging.getLogger("tuning_core")

CPU_BACKEND_ENV = "ACCELERATE_USE_CPU"
# Set in every process `accelerate launch` starts, whichever launcher it picked.
_ACCELERATE_MARKERS = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND")


class LaunchError(UserError):
    """The processes that run are not the processes the launch asked for."""

    exit_code = 2


# --------------------------------------------------------------------------- launch


@dataclass
class LaunchRequest:
    """How many processes the launcher was asked for, and who asked."""

    processes: int
    launcher: str  # "torchrun", "accelerate launch", "the environment"
    detail: str = ""  # e.g. "WORLD_SIZE=2" or the accelerate command line


def truthy(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _int_env(env: Mapping[str, str], key: str) -> int | None:
    try:
        return int(env[key])
    except (KeyError, ValueError):
        return None


def accelerator_available() -> bool:
    """Whether torch sees a GPU (or another accelerator torch supports) in this process."""
    import torch

    if hasattr(torch, "accelerator"):
        return bool(torch.accelerator.is_available())
    return torch.cuda.is_available()


def prepare_launch(environ: MutableMapping[str, str] | None = None, has_accelerator: bool | None = None) -> str | None:
    """Make a torchrun-style launch on a machine without a GPU train as one DDP job over gloo.

    Must run before the TrainingArguments are built. Under torchrun (or `accelerate
    launch --multi_gpu`), transformers only joins the process group when accelerate
    finds a GPU; without one each process trains its own copy of the model. Setting
    ACCELERATE_USE_CPU gives accelerate's multi-CPU mode, which uses gloo. An explicit
    ACCELERATE_USE_CPU (either value) is left alone. Returns a note when it acted.
    """
    env = os.environ if environ is None else environ
    world = _int_env(env, "WORLD_SIZE") or 1
    if world <= 1 or "LOCAL_RANK" not in env or CPU_BACKEND_ENV in env:
        return None
    if has_accelerator is None:
        has_accelerator = accelerator_available()
    if has_accelerator:
        return None
    env[CPU_BACKEND_ENV] = "true"
    return f"no GPU in this process: the {world} processes train on CPU over gloo"


def requested_processes(
    environ: Mapping[str, str] | None = None, parent_argv: Sequence[str] | None = None
) -> LaunchRequest | None:
    """The process count the launcher was asked for, when it can be told; None otherwise.

    WORLD_SIZE is set by torchrun, by `accelerate launch` when it starts several
    processes, and by job operators (Kubeflow's PyTorchJob). `accelerate launch`
    with its single-process launcher sets no WORLD_SIZE, so its own command line
    (this process's parent) is read instead.
    """
    env = os.environ if environ is None else environ
    world = _int_env(env, "WORLD_SIZE")
    if world is not None:
        if "TORCHELASTIC_RUN_ID" in env:
            launcher = "accelerate launch" if any(k in env for k in _ACCELERATE_MARKERS) else "torchrun"
        else:
            launcher = "the environment"
        return LaunchRequest(world, launcher, f"WORLD_SIZE={world}")
    if not any(k in env for k in _ACCELERATE_MARKERS):
        return None
    argv = list(parent_argv) if parent_argv is not None else _parent_argv()
    count = accelerate_launch_processes(argv)
    if count is None:
        return None
    return LaunchRequest(count, "accelerate launch", " ".join(argv))


def _parent_argv() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def accelerate_launch_processes(argv: Sequence[str]) -> int | None:
    """--num_processes of an `accelerate launch` command line (or its config file); None if not one."""
    argv = list(argv)
    start = None
    for i, part in enumerate(argv):
        name = os.path.basename(part)
        if name == "accelerate-launch" or part == "accelerate.commands.launch":
            start = i + 1
            break
        if (
            name in ("accelerate", "accelerate.commands.accelerate_cli")
            and i + 1 < len(argv)
            and argv[i + 1] == "launch"
        ):
            start = i + 2
            break
    if start is None:
        return None
    from accelerate.commands.launch import launch_command_parser

    try:
        args, _ = launch_command_parser().parse_known_args(argv[start:])
    except SystemExit:
        return None
    if args.num_processes is not None:
        return int(args.num_processes)
    from accelerate.commands.config.config_args import default_config_file

    path = args.config_file or (default_config_file if os.path.isfile(default_config_file) else None)
    if not path:
        return None
    try:
        data = read_yaml(path)
    except ConfigError:
        return None
    value = data.get("num_processes")
    return int(value) if isinstance(value, int) and value > 0 else None


def check_launch(
    training_args, environ: Mapping[str, str] | None = None, parent_argv: Sequence[str] | None = None
) -> LaunchRequest | None:
    """Raise LaunchError when the launch asked for more processes than train together.

    ``training_args`` is the run's TrainingArguments (its world_size is what the
    Trainer will use). Returns the request, or None when there was nothing to check.
    """
    env = os.environ if environ is None else environ
    request = requested_processes(env, parent_argv)
    actual = int(training_args.world_size)
    if request is None or request.processes == actual:
        return request
    out = getattr(training_args, "output_dir", None) or "output_dir"
    head = (
        f"{request.launcher} asked for {request.processes} processes ({request.detail}) but this process "
        f"trains in a world of {actual}"
    )
    if request.launcher == "accelerate launch" and "WORLD_SIZE" not in env:
        raise LaunchError(
            f"{head}: accelerate started a single process. Without GPUs (and always with --cpu) "
            f"`accelerate launch` runs one process whatever --num_processes says. Launch the "
            f"{request.processes} processes with `torchrun --nproc_per_node {request.processes} -m "
            f"tuning_core.sft_trainer ...` or `accelerate launch --multi_gpu --num_processes "
            f"{request.processes} -m tuning_core.sft_trainer ...` (both use gloo on a machine without GPUs), "
            f"or drop --num_processes to train in one process."
        )
    if "LOCAL_RANK" not in env:
        cause = (
            "LOCAL_RANK is not set, so this process was not started by torchrun or accelerate launch "
            "(a job operator sets WORLD_SIZE and RANK per pod, not per process): run "
            "`torchrun -m tuning_core.sft_trainer ...` in each pod or node"
        )
    elif not truthy(env.get(CPU_BACKEND_ENV)) and not accelerator_available():
        cause = (
            f"there is no GPU and {CPU_BACKEND_ENV}={env.get(CPU_BACKEND_ENV)!r} keeps accelerate off its "
            f"CPU backend: unset it (tuning-core then uses gloo)"
        )
    else:
        cause = "transformers/accelerate did not join the process group the launcher set up"
    raise LaunchError(
        f"{head}: {cause}. Left to run, the {request.processes} processes would each train "
        f"their own copy and overwrite each other's files in {out}."
    )


def fsdp_requested(training_args=None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the launch (accelerate config) or the flags (--fsdp) ask for FSDP."""
    env = os.environ if environ is None else environ
    if truthy(env.get("ACCELERATE_USE_FSDP")):
        return True
    fsdp = getattr(training_args, "fsdp", None) if training_args is not None else None
    return bool(fsdp) and str(fsdp) not in ("[]", "False", "")


def describe_launch(trainer, environ: Mapping[str, str] | None = None) -> list[str]:
    """Banner lines for a multi-process or FSDP run; a warning line when FSDP was dropped."""
    from accelerate.utils import DistributedType

    state = trainer.accelerator.state
    world = int(state.num_processes)
    kind = state.distributed_type
    backend = getattr(state, "backend", None) or "no backend"
    lines = []
    if kind == DistributedType.FSDP:
        plugin = state.fsdp_plugin
        version = int(getattr(plugin, "fsdp_version", 1) or 1)
        shard = (
            f"reshard_after_forward={plugin.reshard_after_forward}"
            if version == 2
            else f"sharding {getattr(plugin.sharding_strategy, 'name', plugin.sharding_strategy)}"
        )
        sd = getattr(plugin.state_dict_type, "name", plugin.state_dict_type)
        lines.append(f"distributed: FSDP{version} over {world} processes ({backend}), {shard}, checkpoints {sd}")
    elif world > 1:
        lines.append(f"distributed: DDP over {world} processes ({backend})")
    if fsdp_requested(trainer.args, environ) and kind != DistributedType.FSDP:
        what = f"DDP over {world} processes" if world > 1 else "a single process"
        warning = (
            f"FSDP was requested but this run is {what}: accelerate applies FSDP only on GPUs, so every "
            f"process holds the whole model"
        )
        log.warning(warning)
        lines.append("WARNING: " + warning)
    return lines


def prepare_final_save(trainer) -> str | None:
    """Before saving to save_model_dir: an FSDP run gathers full weights even if its checkpoints are sharded."""
    from accelerate.utils import DistributedType

    state = trainer.accelerator.state
    if state.distributed_type != DistributedType.FSDP:
        return None
    plugin = state.fsdp_plugin
    current = getattr(plugin.state_dict_type, "name", str(plugin.state_dict_type))
    if current == "FULL_STATE_DICT":
        return None
    plugin.set_state_dict_type("FULL_STATE_DICT")
    return f"final model saved with full weights (checkpoints use {current})"


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"accelerate config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of accelerate settings, got {type(data).__name__}")
    return data
