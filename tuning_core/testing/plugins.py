"""Test helper: which plugins a folder of tests loads."""

import pytest


def only_plugins_per_module(*names):
    """An autouse, module-scoped fixture that loads only the named entry-point plugins (none: built-ins only).

    Test folders assign it in their conftest.py, e.g. ``_plugins = only_plugins_per_module("packing")``.
    """

    @pytest.fixture(scope="module", autouse=True)
    def _only_plugins():
        from tuning_core.plugins import reset_plugin_manager

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TUNING_CORE_PLUGINS", ",".join(names))
            reset_plugin_manager()
            yield
        reset_plugin_manager()

    return _only_plugins
