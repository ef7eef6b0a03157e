"""Built-in run settings: where the final model goes."""

from __future__ import annotations

from tuning_core.config.arguments import RunArguments
from tuning_core.plugin_api import hookimpl


@hookimpl
def tuning_core_config_classes():
    return [RunArguments]
