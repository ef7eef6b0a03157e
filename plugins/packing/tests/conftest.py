"""Packing tests load the built-ins plus this plugin only, whatever else is installed."""

from tuning_core.testing.plugins import only_plugins_per_module

_packing_plugin_only = only_plugins_per_module("packing")


def pytest_configure(config):
    # The benchmark baselines (random and first-fit-decreasing samplers) double as test references.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
