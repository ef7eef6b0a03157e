"""What a plugin imports: the hook marker, the small types hooks return, and the helpers plugins share.

Plugins import only this module from tuning_core (a test walks their imports). It stays free of torch and
transformers at import time so `tuning-core plugins` stays fast: the helpers import what they need when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pluggy

from tuning_core.checkpoints import check_model_target, staged_model_dir
from tuning_core.data.handlers import DataHandler, HandlerContext
from tuning_core.errors import ConfigError, DataError, UserError, first_line
from tuning_core.hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "CliCommand",
    "ConfigError",
    "ControllerComponents",
    "DataError",
    "DataHandler",
    "HandlerContext",
    "LoadedModel",
    "PatchReport",
    "QuantizedLinear",
    "RunContext",
    "SamplerSpec",
    "UserError",
    "bundled_dataset_path",
    "check_model_target",
    "convert_on_final_save",
    "first_line",
    "generate_greedy",
    "hookimpl",
    "load_for_inference",
    "load_tokenizer",
    "lora_config_from",
    "resolve_attention",
    "resolve_dtype",
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


@runtime_checkable
class QuantizedLinear(Protocol):
    """A frozen quantized linear layer (a module whose ``forward(x)`` is ``x W^T + b``) that other plugins,
    e.g. fused LoRA, can build on without knowing the quantizer.

    ``dequantize(dtype)`` returns the dense weight as ``[in_features, out_features]`` (the transpose of
    ``nn.Linear.weight``). A layer may also offer ``input_grad(dy)`` returning ``dy W`` for 2-D ``dy``
    without building the dense weight (e.g. a fused kernel); without it, users fall back to ``dequantize``.
    """

    in_features: int
    out_features: int

    def dequantize(self, dtype: Any) -> Any: ...


# --- helpers for plugins: documented in docs/plugins.md ("Plugin utilities"); imports stay inside.


def resolve_dtype(name: str) -> Any:
    """The torch dtype for a ``--torch_dtype`` value; "auto" is bfloat16 (or float16) on a GPU, else float32."""
    from tuning_core.builtin.model_loader import resolve_dtype as resolve

    return resolve(name)


def resolve_attention(config) -> str:
    """The ``attn_implementation`` for the run: ``--attn_implementation``, flash-attn if asked/available, else sdpa."""
    from tuning_core.builtin.model_loader import resolve_attention as resolve

    return resolve(config)


def load_tokenizer(config) -> Any:
    """The run's tokenizer (``--tokenizer_name_or_path`` or the model's), a UserError naming the path if it fails."""
    from tuning_core.builtin.model_loader import load_tokenizer as load

    return load(config)


def lora_config_from(config, model, tokenizer=None) -> Any:
    """The peft ``LoraConfig`` the LoRA flags (``--r``, ``--lora_alpha``, every LoRA option...) describe.

    aLoRA needs the tokenizer, to turn its invocation string into token ids."""
    from tuning_core.builtin.peft import lora_config_from as build

    return build(config, model, tokenizer)


def convert_on_final_save(peft_model, config) -> None:
    """Make the final adapter of a PiSSA/OLoRA run load onto the original base (checkpoints stay resumable)."""
    from tuning_core.builtin.peft import convert_on_final_save as convert

    convert(peft_model, config)


def bundled_dataset_path() -> Path:
    """The small JSONL dataset shipped with tuning-core (fields "Tweet text", "text_label", "output")."""
    from tuning_core.testing.tiny import bundled_dataset_path as bundled

    return bundled()


def load_for_inference(model: str, base_model_name_or_path: str | None = None, torch_dtype: str = "auto"):
    """Load a tuned output directory (adapter on its base, full or merged model) or a base model exactly
    as `tuning-core infer` does; returns an object with ``.model``, ``.tokenizer``, ``.checkpoint``,
    ``.description``. Bad paths raise UserError before anything heavy loads. Imports torch only when called."""
    from tuning_core.infer import load_for_inference as load

    return load(model, base_model_name_or_path, torch_dtype)


def generate_greedy(model, tokenizer, texts: list[str], max_new_tokens: int = 20, batch_size: int = 8) -> list[str]:
    """Batched greedy generation exactly as `tuning-core infer` does it: each result is the input text
    followed by its continuation."""
    from tuning_core.infer import generate

    return generate(model, tokenizer, texts, max_new_tokens, batch_size)
