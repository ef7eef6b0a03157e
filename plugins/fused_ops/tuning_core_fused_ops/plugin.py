"""Entry point of the fused_ops plugin (``tuning_core`` entry-point group).

Kept free of torch, triton and transformers: the heavy modules are imported
inside ``tuning_core_patch_model`` only.
"""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, hookimpl

from .arguments import FastMoeArguments, FusedOpsArguments
from .moe_rules import MOE_ARCHITECTURES
from .moe_selection import moe_selection_from_config
from .moe_selection import validate as validate_moe
from .rules import ARCHITECTURES, architectures_details, softcap_problem, unsupported_message
from .selection import config_on_disk, selection_from_config


@hookimpl
def tuning_core_config_classes():
    return [FusedOpsArguments, FastMoeArguments]


@hookimpl
def tuning_core_plugin_details():
    details = architectures_details()
    for model_type, arch in MOE_ARCHITECTURES.items():  # --fast_moe's expert MLP, a kernel of its own
        details.setdefault(model_type, {"causal_lm": None, "kernels": {}, "not_applicable": {}})
        details[model_type]["kernels"]["fast_moe"] = f"{arch.experts_class} -> scatter/gather grouped experts"
    return {"architectures": details}


@hookimpl
def tuning_core_validate_config(config):
    validate_moe(config)
    selection = selection_from_config(config)
    if not selection.features:
        return
    # Catch an unsupported architecture (or loss setting) before the model loads, when the checkpoint is local.
    path, model_config = config_on_disk(getattr(config, "model_name_or_path", None))
    model_type = model_config.get("model_type")
    if model_type is not None and model_type not in ARCHITECTURES:
        raise ConfigError(unsupported_message(model_type, _flags(selection)))
    arch = ARCHITECTURES.get(model_type)
    if arch is not None and arch.softcap_attr and selection.loss == "fused_linear":
        value = model_config.get(arch.softcap_attr)
        problem = softcap_problem(value)
        if problem:
            raise ConfigError(
                f"{path}: {arch.softcap_attr}: {problem}, got {value!r}; the fused loss of "
                "--fast_kernels/--fused_linear_loss cannot apply it (use --fast_cross_entropy instead)"
            )


@hookimpl
def tuning_core_patch_model(config, model):
    selection = selection_from_config(config)
    moe = moe_selection_from_config(config)
    if not selection.features and moe is None:
        return None
    report = None
    if selection.features:
        from .patcher import patch_model

        report = patch_model(model, selection)
    if moe is not None:
        from .patches.moe import patch_moe

        report = patch_moe(model, moe, report)
    return report


def _flags(selection) -> str:
    return "asked for by " + ", ".join(sorted(selection.features))
