"""Turn the flags (both forms) into one ``Selection`` of features, or a ConfigError naming the flag. No torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuning_core.plugin_api import ConfigError

from .arguments import FusedOpsArguments

_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
# fms-hf-tuning's words for the quantized base of --fused_lora. Which plugin loads such a base is not this
# plugin's business: the patch checks the loaded model's layers (plugin_api.QuantizedLinear, bitsandbytes).
LORA_BASE_KINDS = ("auto_gptq", "bitsandbytes")


@dataclass(frozen=True)
class Selection:
    """What to patch. ``loss`` is "fused_linear", "cross_entropy" or None."""

    loss: str | None = None
    rms_norm: bool = False
    rope: bool = False
    swiglu: bool = False
    lora: bool = False
    lora_base: str | None = None  # the kind named by --fused_lora, if any
    backend: str = "auto"
    chunk_rows: int | None = None

    @property
    def features(self) -> frozenset[str]:
        named = {"rms_norm": self.rms_norm, "rope": self.rope, "swiglu": self.swiglu, "lora": self.lora}
        out = {k for k, on in named.items() if on}
        if self.loss:
            out.add(self.loss)
        return frozenset(out)


def _bool(value, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{flag}: expected True or False, got {value!r}")


def _arguments(config) -> FusedOpsArguments:
    section = getattr(config, "section", None)
    if callable(section):
        try:
            return section(FusedOpsArguments)
        except (KeyError, LookupError, TypeError):
            pass
    defaults = FusedOpsArguments()
    return FusedOpsArguments(
        **{name: getattr(config, name, getattr(defaults, name)) for name in FusedOpsArguments.__dataclass_fields__}
    )


def selection_from_config(config) -> Selection:
    """Resolve and validate the flags; raises ConfigError."""
    args = _arguments(config)
    fast_loss = fast_norm = fast_rope = False
    if args.fast_kernels:
        if len(args.fast_kernels) != 3:
            raise ConfigError(
                "--fast_kernels takes three booleans (fast loss, fast RMSNorm, fast RoPE), "
                f"e.g. --fast_kernels True True True; got {list(args.fast_kernels)}"
            )
        fast_loss, fast_norm, fast_rope = (_bool(v, "--fast_kernels") for v in args.fast_kernels)

    lora, lora_base = bool(args.fast_lora), None
    if args.fused_lora:
        if len(args.fused_lora) != 2:
            raise ConfigError(
                "--fused_lora takes a base kind and a boolean, e.g. --fused_lora auto_gptq True; "
                f"got {list(args.fused_lora)}"
            )
        kind, on = args.fused_lora[0], _bool(args.fused_lora[1], "--fused_lora")
        if kind not in LORA_BASE_KINDS:
            raise ConfigError(f"--fused_lora: unknown base kind {kind!r}; expected one of {sorted(LORA_BASE_KINDS)}")
        if on:
            lora, lora_base = True, kind

    if args.fused_linear_loss and args.fast_cross_entropy:
        raise ConfigError("--fused_linear_loss and --fast_cross_entropy both replace the loss; pick one")
    loss = None
    if args.fast_cross_entropy:
        loss = "cross_entropy"
    elif args.fused_linear_loss or fast_loss:
        loss = "fused_linear"

    if lora:
        peft_method = getattr(config, "peft_method", None)
        if peft_method != "lora":
            flag = "--fused_lora" if lora_base else "--fast_lora"
            raise ConfigError(
                f"{flag} fuses LoRA adapters and needs --peft_method lora (got --peft_method {peft_method})"
            )
        flag = "--fused_lora" if lora_base else "--fast_lora"
        has = getattr(config, "has", None)
        for option in ("use_dora", "lora_bias"):
            if (has is None or has(option)) and getattr(config, option, None):
                raise ConfigError(f"{flag} fuses plain LoRA and cannot fuse --{option} layers; drop one of the two")

    if args.fused_ops_backend not in ("auto", "triton", "torch"):
        raise ConfigError(f"--fused_ops_backend: expected auto, triton or torch, got {args.fused_ops_backend!r}")
    if args.fused_loss_chunk_size < 0:
        raise ConfigError(f"--fused_loss_chunk_size must be >= 0, got {args.fused_loss_chunk_size}")

    return Selection(
        loss=loss,
        rms_norm=bool(args.fast_rms_norm or fast_norm),
        rope=bool(args.fast_rope or fast_rope),
        swiglu=bool(args.fast_swiglu),
        lora=lora,
        lora_base=lora_base,
        backend=args.fused_ops_backend,
        chunk_rows=args.fused_loss_chunk_size or None,
    )


def config_on_disk(model_name_or_path) -> tuple[Path | None, dict]:
    """A local checkpoint's config.json (path, contents), read without transformers; (None, {}) if unknown."""
    if not model_name_or_path:
        return None, {}
    path = Path(str(model_name_or_path)) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, {}
    return (path, data) if isinstance(data, dict) else (None, {})


def model_type_on_disk(model_name_or_path) -> str | None:
    """The ``model_type`` in a local checkpoint's config.json; None if unknown."""
    return config_on_disk(model_name_or_path)[1].get("model_type")
