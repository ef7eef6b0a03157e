"""The packing flags and the checks that turn them into settings (no torch import here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tuning_core.plugin_api import ConfigError

PADDING_FREE_METHODS = ("huggingface",)


@dataclass
class PackingArguments:
    padding_free: list[str] | None = field(
        default=None,
        metadata={
            "help": "Padding-free batches: each batch becomes one row of its examples back to back, with "
            "position_ids restarting at every example, so no padding is computed and the loss is the "
            "padded run's. fms-hf-tuning form: --padding_free huggingface; --padding_free alone does the "
            "same.",
            "choices": list(PADDING_FREE_METHODS),
            "const": ["huggingface"],
        },
    )
    multipack: list[int] | None = field(
        default=None,
        metadata={
            "help": "Multipack batch sampler: per step, split examples over N processes with nearly equal token "
            "counts (and attention cost), so no process waits. fms-hf-tuning form: --multipack 16 where "
            "16 is the number of processes planned for; --multipack alone plans for the world size. Each "
            "process runs N / world_size micro-batches per step. Needs --padding_free.",
            "const": [],
        },
    )


@dataclass(frozen=True)
class PackingSettings:
    padding_free: bool
    multipack_bins: int | None  # bins per step: None = multipack off


def _world_size(config) -> int:
    targs = getattr(config, "training_args", None)
    return int(getattr(targs, "world_size", 1) or 1) if targs is not None else 1


def resolve(config) -> PackingSettings:
    """Validated packing settings for ``config``; raises ConfigError naming the flag on bad input."""
    pf = config.padding_free
    if pf is not None:
        if isinstance(pf, str):
            pf = [pf]
        bad = [m for m in pf if m not in PADDING_FREE_METHODS]
        if bad or len(pf) > 1:
            raise ConfigError(f"--padding_free: expected one method, 'huggingface' (or the flag alone), got {pf!r}")
    padding_free = pf is not None

    mp = config.multipack
    bins = None
    if mp is not None:
        if isinstance(mp, int):
            mp = [mp]
        if len(mp) > 1:
            raise ConfigError(f"--multipack: expected one number of processes, got {mp!r}")
        world = _world_size(config)
        launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if launched > world:
            raise ConfigError(
                f"--multipack: {launched} processes were launched but training runs as {world}; each would train "
                "on the whole plan. On a machine without GPUs pass --use_cpu true so they join one gloo group"
            )
        bins = int(mp[0]) if mp else world
        if bins < 1:
            raise ConfigError(f"--multipack: the number of processes must be at least 1, got {bins}")
        if bins % world:
            raise ConfigError(
                f"--multipack {bins}: must be a multiple of the world size {world}, so every "
                "process runs the same number of balanced micro-batches per step"
            )
        if not padding_free:
            raise ConfigError(
                "--multipack needs --padding_free huggingface: it balances real tokens, which only "
                "padding-free batches compute"
            )
        targs = config.training_args
        if targs is not None and getattr(targs, "group_by_length", False):
            raise ConfigError(
                "--group_by_length cannot be combined with --multipack: the multipack sampler decides the batches"
            )

    if padding_free and config.has("peft_method") and str(config.peft_method).lower() == "pt":
        raise ConfigError(
            "--padding_free cannot be combined with --peft_method pt: prompt tuning prepends virtual "
            "tokens to each row, and a padding-free row holds several examples"
        )
    return PackingSettings(padding_free=padding_free, multipack_bins=bins)
