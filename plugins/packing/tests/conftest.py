"""Packing tests load the built-ins plus this plugin only, whatever else is installed."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _packing_plugin_only():
    from tuning_core.plugins import reset_plugin_manager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNING_CORE_PLUGINS", "packing")
        reset_plugin_manager()
        yield
    reset_plugin_manager()


def pytest_configure(config):
    # The benchmark baselines (random and first-fit-decreasing samplers) double as test references.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
