"""Which metric-handler and operation classes a controller config may name.

Built-ins plus whatever plugins return from the ``tuning_core_controller_components`` hook.
"""

from __future__ import annotations

from tuning_core.controller.metrics import BUILTIN_METRICS, MetricHandler
from tuning_core.controller.operations import BUILTIN_OPERATIONS, Operation
from tuning_core.errors import ConfigError
from tuning_core.plugin_api import ControllerComponents


def builtin_components() -> ControllerComponents:
    return ControllerComponents(metrics=dict(BUILTIN_METRICS), operations=dict(BUILTIN_OPERATIONS))


def merge_components(results) -> ControllerComponents:
    """Combine hook results; two different classes under one name is an error."""
    merged = builtin_components()
    for result in results:
        if result is None:
            continue
        if not isinstance(result, ControllerComponents):
            raise ConfigError(
                f"a plugin returned {type(result).__name__} from tuning_core_controller_components; "
                "expected ControllerComponents"
            )
        for kind, table, base in (
            ("metric handler", merged.metrics, MetricHandler),
            ("operation", merged.operations, Operation),
        ):
            for name, cls in getattr(result, "metrics" if base is MetricHandler else "operations").items():
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise ConfigError(
                        f"controller {kind} '{name}' registered by a plugin is not a subclass of "
                        f"tuning_core.controller.{base.__name__}"
                    )
                if name in table and table[name] is not cls:
                    raise ConfigError(
                        f"two plugins register a controller {kind} named '{name}' "
                        f"({table[name].__module__} and {cls.__module__})"
                    )
                table[name] = cls
    return merged


def gather_components(plugin_manager=None) -> ControllerComponents:
    """Built-ins plus every loaded plugin's components."""
    if plugin_manager is None:
        from tuning_core.plugins import get_plugin_manager

        plugin_manager = get_plugin_manager()
    return merge_components(plugin_manager.hook.tuning_core_controller_components())
