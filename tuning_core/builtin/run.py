"""Built-in run settings: where the final model goes, trackers, the loss reduction."""

from __future__ import annotations

from tuning_core.config.arguments import RunArguments
from tuning_core.plugin_api import ConfigError, hookimpl


@hookimpl
def tuning_core_config_classes():
    return [RunArguments]


@hookimpl
def tuning_core_validate_config(config):
    if config.enable_reduce_loss_sum and getattr(config, "peft_method", "none") == "pt":
        raise ConfigError(
            "--enable_reduce_loss_sum does not work with --peft_method pt: the virtual tokens shift "
            "the labels the summed loss needs (fms-hf-tuning has the same limit)"
        )
