"""Parse --fast_moe (True/False or an expert-parallel degree) and check it against the checkpoint. No torch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tuning_core.plugin_api import ConfigError

from .arguments import FastMoeArguments
from .moe_rules import EXPERT_MODULE_NAMES, MOE_ARCHITECTURES, supported_moe_types

_TRUE, _FALSE = {"true", "yes"}, {"false", "no", "none"}


@dataclass(frozen=True)
class MoeSelection:
    ep_degree: int = 1
    backend: str = "auto"


def _value(config):
    section = getattr(config, "section", None)
    if callable(section):
        try:
            return section(FastMoeArguments).fast_moe
        except (KeyError, LookupError, TypeError, AttributeError):
            pass
    return getattr(config, "fast_moe", None)


def moe_selection_from_config(config) -> MoeSelection | None:
    """None when --fast_moe is off; raises ConfigError on a malformed value."""
    value = _value(config)
    if value is None or value is False:
        return None
    if value is True:
        degree = 1
    else:
        text = str(value).strip().lower()
        if text in _FALSE:
            return None
        if text in _TRUE:
            degree = 1
        else:
            try:
                degree = int(text)
            except ValueError:
                raise ConfigError(
                    f"--fast_moe: expected True, False or an expert-parallel degree (an integer >= 1), got {value!r}"
                ) from None
            if degree < 1:
                raise ConfigError(f"--fast_moe: the expert-parallel degree must be >= 1, got {degree}")
    from .selection import _arguments  # the shared --fused_ops_backend

    return MoeSelection(ep_degree=degree, backend=_arguments(config).fused_ops_backend)


def _checkpoint_config(model_name_or_path) -> tuple[Path, dict] | None:
    if not model_name_or_path:
        return None
    path = Path(str(model_name_or_path)) / "config.json"
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def check_model_type(model_type, where: str) -> None:
    if model_type not in MOE_ARCHITECTURES:
        raise ConfigError(
            f"--fast_moe: {where} has model_type {model_type!r}, which is not a mixture-of-experts "
            f"model --fast_moe supports (supported: {', '.join(supported_moe_types())}); drop "
            "--fast_moe for a dense model"
        )


def check_degree(degree: int, num_experts: int | None, world: int, where: str) -> None:
    """The expert-parallel degree must divide the experts and the world size; N > 1 is then refused (see README)."""
    if degree == 1:
        return
    if num_experts is not None and num_experts % degree:
        raise ConfigError(
            f"--fast_moe {degree}: the expert-parallel degree must divide the number of experts "
            f"({num_experts} in {where})"
        )
    if world % degree:
        raise ConfigError(
            f"--fast_moe {degree}: the expert-parallel degree must divide the world size (WORLD_SIZE={world})"
        )
    raise ConfigError(
        f"--fast_moe {degree}: expert parallelism (degree > 1) is not implemented in tuning-core yet; "
        "use --fast_moe True (every rank holds all experts, ranks stay data parallel)"
    )


def check_lora_targets(config, arch) -> None:
    """peft's target_modules cannot adapt 3-D expert parameters: say which modules it can."""
    if getattr(config, "peft_method", None) != "lora":
        return
    targets = getattr(config, "target_modules", None) or []
    named = [
        t
        for t in targets
        if t.rsplit(".", 1)[-1] in EXPERT_MODULE_NAMES
        or (t.rsplit(".", 1)[-1] == "down_proj" and arch.model_type != "qwen3_moe")
    ]
    if named:
        raise ConfigError(
            f"--target_modules {' '.join(named)}: in {arch.model_type} the experts are 3-D parameters "
            f"({', '.join(arch.expert_parameters)}) and the router is no linear layer, so LoRA target_modules "
            "cannot adapt them; "
            f"targetable modules: {', '.join(arch.lora_targets)} (LoRA on the experts themselves goes through "
            f"peft's target_parameters: {' '.join(arch.expert_parameters)})"
        )


def validate(config) -> MoeSelection | None:
    """Every --fast_moe check that needs no model: the flag, the checkpoint's type, the degree, LoRA targets."""
    selection = moe_selection_from_config(config)
    if selection is None:
        return None
    found = _checkpoint_config(getattr(config, "model_name_or_path", None))
    num_experts = None
    if found is not None:
        path, cfg = found
        check_model_type(cfg.get("model_type"), str(path))
        arch = MOE_ARCHITECTURES[cfg["model_type"]]
        num_experts = cfg.get(arch.num_experts_key)
        check_lora_targets(config, arch)
    check_degree(selection.ep_degree, num_experts, world_size(), str(found[0]) if found else "the model config")
    return selection
