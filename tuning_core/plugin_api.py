"""What a plugin imports: the hook marker and the small types hooks return.

Kept free of torch and transformers so `tuning-core plugins` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from tuning_core.checkpoints import check_model_target, staged_model_dir
from tuning_core.errors import ConfigError, UserError
from tuning_core.hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "hookimpl",
    "ConfigError",
    "UserError",
    "LoadedModel",
    "PatchReport",
    "SamplerSpec",
    "CliCommand",
    "ControllerComponents",
    "RunContext",
    "check_model_target",
    "staged_model_dir",
]


@dataclass
class LoadedModel:
    """Result of `tuning_core_load_model`."""

    model: Any
    tokenizer: Any
    description: str = ""  # one line for the banner, e.g. "GPTQ 4-bit, group 128"


@dataclass
class PatchReport:
    """Result of `tuning_core_patch_model`: what a plugin replaced, for the banner."""

    plugin: str
    replaced: dict[str, int] = field(default_factory=dict)  # "LlamaRMSNorm -> FusedRMSNorm": count
    notes: list[str] = field(default_factory=list)
    replaces_loss: bool = False  # the model now computes its own loss: the core must call its plain forward

    def lines(self) -> list[str]:
        out = [f"patched {what} (x{count})" for what, count in self.replaced.items()]
        return out + list(self.notes)


@dataclass
class SamplerSpec:
    """Result of `tuning_core_train_sampler`.

    ``kind`` is "sampler" (yields indices) or "batch_sampler" (yields lists of
    indices). ``per_rank`` means the sampler already yields this process's share
    in a multi-process run, so the core must not shard it again.
    """

    sampler: Any
    kind: str = "sampler"
    per_rank: bool = False
    description: str = ""

    def __post_init__(self):
        if self.kind not in ("sampler", "batch_sampler"):
            raise ValueError(f"SamplerSpec.kind must be 'sampler' or 'batch_sampler', not {self.kind!r}")


@dataclass
class CliCommand:
    """A `tuning-core` subcommand contributed by a plugin.

    ``add_arguments(parser)`` fills an argparse parser; ``run(args)`` returns an
    exit code. Import heavy libraries inside ``run``, not at module level.
    """

    name: str
    help: str
    add_arguments: Callable[[Any], None]
    run: Callable[[Any], int]


@dataclass
class ControllerComponents:
    """Result of `tuning_core_controller_components`: extra classes by name."""

    metrics: dict[str, type] = field(default_factory=dict)
    operations: dict[str, type] = field(default_factory=dict)


@dataclass
class RunContext:
    """Facts about the current run that callbacks may want to record."""

    output_dir: str
    is_main_process: bool = True
    timings: dict[str, float] = field(default_factory=dict)  # e.g. "model_load_seconds"
    notes: list[str] = field(default_factory=list)  # extra banner lines
