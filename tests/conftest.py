"""Core tests run with the built-in plugins only, whatever else is installed."""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _builtins_only():
    from tuning_core.plugins import reset_plugin_manager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNING_CORE_PLUGINS", "")
        reset_plugin_manager()
        yield
    reset_plugin_manager()
