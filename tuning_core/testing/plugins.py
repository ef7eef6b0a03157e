"""Test helper: which plugins a test, or a folder of tests, loads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def only_plugins(*names: str) -> Iterator[None]:
    """Load only the named entry-point plugins (none: built-ins only) inside the block; forget them after."""
    from tuning_core.plugins import ENV_FILTER, reset_plugin_manager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_FILTER, ",".join(names))
        reset_plugin_manager()
        try:
            yield
        finally:
            reset_plugin_manager()


def only_plugins_per_module(*names):
    """An autouse, module-scoped fixture that loads only the named entry-point plugins (none: built-ins only).

    Test folders assign it in their conftest.py, e.g. ``_plugins = only_plugins_per_module("packing")``.
    """

    @pytest.fixture(scope="module", autouse=True)
    def _only_plugins():
        with only_plugins(*names):
            yield

    return _only_plugins
