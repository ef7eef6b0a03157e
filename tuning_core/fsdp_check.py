"""`tuning-core check-fsdp FILE [NUM_PROCESSES]`: check an `accelerate launch` FSDP config before a launch.

The file is read through accelerate's own parser, launcher and FSDP plugin, so the check reports what
accelerate would reject at launch, plus what it would silently ignore (unknown fsdp_config keys, FSDP1
settings in an FSDP2 file) and settings that undo sharding's memory savings.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tuning_core.distributed import accelerator_available, read_yaml, truthy
from tuning_core.errors import ConfigError, UserError


@dataclass
class FsdpSettings:
    """What an accelerate FSDP config file amounts to, as accelerate's FSDP plugin reads it."""

    path: str
    fsdp_version: int
    sharding: str  # "FULL_SHARD" style for FSDP1; "reshard_after_forward=True" for FSDP2
    auto_wrap_policy: str
    state_dict_type: str
    cpu_ram_efficient_loading: bool
    offload_params: bool
    mixed_precision: str
    num_processes: int
    notes: list[str] = field(default_factory=list)

    @property
    def full_shard(self) -> bool:
        return self.sharding in ("FULL_SHARD", "reshard_after_forward=True")

    def summary(self) -> str:
        lines = [
            f"{self.path}: FSDP{self.fsdp_version}, {self.sharding}, wrap {self.auto_wrap_policy}, "
            f"state dict {self.state_dict_type}, cpu_ram_efficient_loading={self.cpu_ram_efficient_loading}, "
            f"offload_params={self.offload_params}, mixed_precision={self.mixed_precision}"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _known_fsdp_keys() -> set[str]:
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.launch import launch_command_parser

    keys = {a.dest for a in launch_command_parser()._actions if a.dest.startswith("fsdp_")}
    keys |= {"fsdp_" + f.name for f in dataclasses.fields(FullyShardedDataParallelPlugin)}
    keys |= {f.name for f in dataclasses.fields(FullyShardedDataParallelPlugin) if f.name.startswith("fsdp_")}
    return keys


def _closest(key: str, known) -> str:
    import difflib

    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{near[0]}'?" if near else ""


def check_accelerate_config(path: str | Path, num_processes: int = 2) -> FsdpSettings:
    """Validate an `accelerate launch --config_file` for FSDP the way accelerate itself will read it.

    Checks, in order: the file is a YAML mapping of known accelerate settings;
    distributed_type is FSDP; every fsdp_config key is one accelerate knows (a typo
    there is silently ignored by accelerate); accelerate's launcher turns the file
    into its environment (as `accelerate launch` does for ``num_processes``
    processes); accelerate's FullyShardedDataParallelPlugin accepts that environment.
    Raises ConfigError on the first problem; returns the resulting settings.
    """
    from accelerate.commands.config.config_args import ClusterConfig

    path = str(path)
    data = read_yaml(path)
    top = {f.name for f in dataclasses.fields(ClusterConfig)}
    for key in data:
        if key not in top:
            raise ConfigError(f"{path}: unknown accelerate setting '{key}'{_closest(key, top)}")
    if str(data.get("distributed_type", "")).upper() != "FSDP":
        raise ConfigError(
            f"{path}: distributed_type is {data.get('distributed_type')!r}; an FSDP config needs distributed_type: FSDP"
        )
    fsdp = data.get("fsdp_config")
    if not isinstance(fsdp, dict) or not fsdp:
        raise ConfigError(f"{path}: distributed_type FSDP needs an fsdp_config mapping")
    known = _known_fsdp_keys()
    for key in fsdp:
        full = key if key.startswith("fsdp") else "fsdp_" + key
        if full not in known:
            raise ConfigError(
                f"{path}: fsdp_config has unknown key '{key}'{_closest(full, known)} (accelerate would ignore it)"
            )
    env = _launcher_env(path, num_processes)
    plugin = _plugin_from_env(path, env)
    return _settings(path, data, plugin, env, num_processes)


def _launcher_env(path: str, num_processes: int) -> dict[str, str]:
    """The environment `accelerate launch --config_file path --num_processes N` gives each process."""
    import logging as _logging

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        [
            "--config_file",
            path,
            "--num_processes",
            str(num_processes),
            "--main_process_port",
            "29500",
            "-m",
            "tuning_core.sft_trainer",
        ]
    )
    quiet = _logging.getLogger("accelerate")
    level = quiet.level
    quiet.setLevel(_logging.ERROR)
    try:
        args, _defaults, _mp_from_config = _validate_launch_command(args)
        if not args.use_fsdp:
            raise ConfigError(f"{path}: accelerate does not read this file as an FSDP launch")
        return {k: v for k, v in prepare_multi_gpu_env(args).items() if k.startswith(("FSDP_", "ACCELERATE_"))}
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: accelerate rejects it: {e}") from None
    finally:
        quiet.setLevel(level)


def _plugin_from_env(path: str, env: dict[str, str]):
    from accelerate import FullyShardedDataParallelPlugin

    saved = dict(os.environ)
    try:
        os.environ.update(env)
        if env.get("FSDP_SYNC_MODULE_STATES") == "true" and not accelerator_available():
            # sync_module_states broadcasts from the current GPU: accelerate refuses it while building the plugin
            # on a machine without one (a RuntimeError since 1.16, a device lookup failure before). That is a
            # fact about this machine, not the file, so check everything else.
            os.environ["FSDP_SYNC_MODULE_STATES"] = "false"
            os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "false"
        return FullyShardedDataParallelPlugin()
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: accelerate's FSDP plugin rejects it: {e}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _name(value) -> str:
    return str(getattr(value, "name", value))


def _settings(path: str, data: dict, plugin, env: dict[str, str], num_processes: int) -> FsdpSettings:
    version = int(plugin.fsdp_version or 1)
    if version == 2:
        sharding = f"reshard_after_forward={plugin.reshard_after_forward}"
    else:
        sharding = _name(plugin.sharding_strategy)
    wrap = data["fsdp_config"].get("fsdp_auto_wrap_policy") or data["fsdp_config"].get("auto_wrap_policy") or "NO_WRAP"
    settings = FsdpSettings(
        path=path,
        fsdp_version=version,
        sharding=sharding,
        auto_wrap_policy=str(wrap),
        state_dict_type=_name(plugin.state_dict_type),
        cpu_ram_efficient_loading=truthy(env.get("FSDP_CPU_RAM_EFFICIENT_LOADING")),
        offload_params=truthy(env.get("FSDP_OFFLOAD_PARAMS")),
        mixed_precision=str(data.get("mixed_precision", "no")),
        num_processes=num_processes,
    )
    if str(wrap).upper() == "NO_WRAP":
        settings.notes.append(
            "NO_WRAP makes the whole model one FSDP unit: every parameter is gathered at once, "
            "so sharding saves little memory; use TRANSFORMER_BASED_WRAP"
        )
    if settings.state_dict_type != "FULL_STATE_DICT":
        settings.notes.append(
            f"checkpoints are {settings.state_dict_type} (one part per process); tuning-core still "
            f"gathers full weights for save_model_dir"
        )
    if not settings.full_shard:
        settings.notes.append("not a full shard: each process keeps whole parameters between forward and backward")
    if version == 2:
        given = {k if k.startswith("fsdp") else "fsdp_" + k for k in data["fsdp_config"]}
        for key, instead in _FSDP1_ONLY.items():
            if key in given:
                settings.notes.append(f"{key} is an FSDP1 setting that FSDP2 ignores{instead}")
    return settings


# FSDP1 settings FSDP2 does not read (fsdp_sync_module_states is still required by the launcher
# alongside fsdp_cpu_ram_efficient_loading, so it is not listed).
_FSDP1_ONLY = {
    "fsdp_sharding_strategy": "; use fsdp_reshard_after_forward (true = FULL_SHARD, false = SHARD_GRAD_OP)",
    "fsdp_backward_prefetch": "",
    "fsdp_forward_prefetch": "",
    "fsdp_use_orig_params": "",
}


def main(argv: list[str] | None = None) -> int:
    """tuning-core check-fsdp FILE [NUM_PROCESSES]: check an accelerate FSDP config file (default: 2 processes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(main.__doc__)
        return 0 if argv else 2
    try:
        settings = check_accelerate_config(argv[0], int(argv[1]) if len(argv) > 1 else 2)
    except UserError as e:
        print(f"tuning-core: error: {e}", file=sys.stderr)
        return e.exit_code
    print(settings.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
