"""Plugin discovery: built-ins plus every entry point in the group `tuning_core`.

TUNING_CORE_PLUGINS=a,b loads only those entry points; set but empty loads none.
Built-ins always load: they are the default answer to every provider hook.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from tuning_core import hookspecs
from tuning_core.errors import UserError

ENTRY_POINT_GROUP = "tuning_core"
ENV_FILTER = "TUNING_CORE_PLUGINS"

BUILTIN_MODULES = [
    "tuning_core.builtin.model_loader",
    "tuning_core.builtin.run",
    "tuning_core.builtin.peft",
    "tuning_core.builtin.tokens",
    "tuning_core.builtin.collator",
    "tuning_core.builtin.file_logger",
    "tuning_core.builtin.data",
    "tuning_core.builtin.controller",
    "tuning_core.builtin.tools",
]


class PluginLoadError(UserError):
    exit_code = 3


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    module: object = field(repr=False, default=None)


_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}


def _selected_names() -> set[str] | None:
    raw = os.environ.get(ENV_FILTER)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _entry_points():
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    from tuning_core import __version__

    for modname in BUILTIN_MODULES:
        module = importlib.import_module(modname)
        name = "builtin." + modname.rsplit(".", 1)[1]
        pm.register(module, name=name)
        infos[name] = PluginInfo(name, "tuning-core", __version__, True, module)

    selected = _selected_names()
    for ep in _entry_points():
        if selected is not None and ep.name not in selected:
            continue
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if ep.name in infos or pm.has_plugin(ep.name):
            raise PluginLoadError(f"plugin name '{ep.name}' from distribution '{dist}' is already taken")
        try:
            module = ep.load()
        except Exception as e:  # any import failure must be loud, never a silent skip
            raise PluginLoadError(
                f"plugin '{ep.name}' (distribution '{dist}' {version}) failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(f"plugin '{ep.name}' (distribution '{dist}') is invalid: {e}") from e
        infos[ep.name] = PluginInfo(ep.name, dist, version, False, module)
    if selected:
        missing = selected - set(infos)
        if missing:
            raise PluginLoadError(
                f"{ENV_FILTER} names plugins that are not installed: {', '.join(sorted(missing))}")
    return pm, infos


def get_plugin_manager() -> pluggy.PluginManager:
    global _manager, _infos
    if _manager is None:
        _manager, _infos = build_plugin_manager()
    return _manager


def plugin_infos() -> dict[str, PluginInfo]:
    get_plugin_manager()
    return dict(_infos)


def reset_plugin_manager() -> None:
    """Forget the loaded plugins (tests change TUNING_CORE_PLUGINS or install plugins)."""
    global _manager, _infos
    _manager, _infos = None, {}


def call_first(pm: pluggy.PluginManager, hook_name: str, **kwargs):
    """Call a firstresult hook in pluggy's order and say which plugin answered: (name, result)."""
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        result = impl.function(*[kwargs[a] for a in impl.argnames])
        if result is not None:
            return impl.plugin_name, result
    return None, None


def call_all(pm: pluggy.PluginManager, hook_name: str, **kwargs):
    """Call a collecting hook and pair each non-None result with its plugin: [(name, result)]."""
    hook = getattr(pm.hook, hook_name)
    out = []
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        result = impl.function(*[kwargs[a] for a in impl.argnames])
        if result is not None:
            out.append((impl.plugin_name, result))
    return out


def hooks_implemented(pm: pluggy.PluginManager, name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    return sorted(c.name for c in pm.get_hookcallers(plugin) or [])
