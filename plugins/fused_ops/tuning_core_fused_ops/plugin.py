"""Entry point of the fused_ops plugin (``tuning_core`` entry-point group).

Kept free of torch, triton and transformers: the heavy modules are imported
inside ``tuning_core_patch_model`` only.
"""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, hookimpl

from .args import FusedOpsArguments
from .rules import ARCHITECTURES, unsupported_message
from .selection import model_type_on_disk, selection_from_config


@hookimpl
def tuning_core_config_classes():
    return [FusedOpsArguments]


@hookimpl
def tuning_core_validate_config(config):
    selection = selection_from_config(config)
    if not selection.features:
        return
    # Catch an unsupported architecture before the model loads, when the checkpoint is a local folder.
    model_type = model_type_on_disk(getattr(config, "model_name_or_path", None))
    if model_type is not None and model_type not in ARCHITECTURES:
        raise ConfigError(unsupported_message(model_type, _flags(selection)))


@hookimpl
def tuning_core_patch_model(config, model):
    selection = selection_from_config(config)
    if not selection.features:
        return None
    from .patcher import patch_model

    return patch_model(model, selection)


def _flags(selection) -> str:
    return "asked for by " + ", ".join(sorted(selection.features))
