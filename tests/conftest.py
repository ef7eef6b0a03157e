"""Core tests run with the built-in plugins only, whatever else is installed."""

from tuning_core.testing.plugins import only_plugins_per_module

_builtins_only = only_plugins_per_module()
