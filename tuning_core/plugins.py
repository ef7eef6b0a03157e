"""Plugin discovery: built-ins plus every entry point in the group `tuning_core`.

TUNING_CORE_PLUGINS=a,b loads only those entry points; set but empty loads none.
Built-ins always load: they are the default answer to every provider hook.
TUNING_CORE_TRACE_PLUGINS=1 prints every hook call, its arguments and its result to stderr.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from tuning_core import hookspecs
from tuning_core.errors import UserError

ENTRY_POINT_GROUP = "tuning_core"
ENV_FILTER = "TUNING_CORE_PLUGINS"
ENV_TRACE = "TUNING_CORE_TRACE_PLUGINS"
TRACE_VALUE_CHARS = 300  # a config or a model repr runs to pages

BUILTIN_MODULES = [
    "tuning_core.builtin.model_loader",
    "tuning_core.builtin.run",
    "tuning_core.builtin.peft",
    "tuning_core.builtin.tokens",
    "tuning_core.builtin.collator",
    "tuning_core.builtin.file_logger",
    "tuning_core.builtin.data",
    "tuning_core.builtin.controller",
    "tuning_core.builtin.commands",
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
                f"plugin '{ep.name}' (distribution '{dist}' {version}) failed to load: {type(e).__name__}: {e}"
            ) from e
        try:
            pm.register(module, name=ep.name)
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(f"plugin '{ep.name}' (distribution '{dist}') is invalid: {e}") from e
        infos[ep.name] = PluginInfo(ep.name, dist, version, False, module)
    if selected:
        missing = selected - set(infos)
        if missing:
            raise PluginLoadError(f"{ENV_FILTER} names plugins that are not installed: {', '.join(sorted(missing))}")
    if os.environ.get(ENV_TRACE, "") not in ("", "0"):
        trace_hook_calls(pm)
    return pm, infos


def _short(value) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= TRACE_VALUE_CHARS else text[:TRACE_VALUE_CHARS] + "..."


def trace_hook_calls(pm: pluggy.PluginManager, stream=None):
    """Print each hook call (arguments, the plugins it goes to) and its result, through pluggy's monitoring.

    Returns the function that stops tracing."""

    def write(line: str) -> None:
        print(line, file=stream or sys.stderr, flush=True)

    def before(hook_name, hook_impls, kwargs):
        args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
        plugins = ", ".join(impl.plugin_name for impl in reversed(hook_impls))
        write(f"[trace] {hook_name}({args}) -> plugins: {plugins}")

    def after(outcome, hook_name, hook_impls, kwargs):
        if outcome.exception is not None:
            write(f"[trace] {hook_name} raised {type(outcome.exception).__name__}: {outcome.exception}")
        else:
            write(f"[trace] {hook_name} returned {_short(outcome.get_result())}")

    return pm.add_hookcall_monitoring(before, after)


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


# Which plugin answered a hook call, for the banner. Hooks are called through pluggy (so wrappers run);
# each implementation's function is wrapped, once, to note its non-None answer in the active record.
_answers: ContextVar[list | None] = ContextVar("tuning_core_hook_answers", default=None)


def _recorded(function, hook_name: str, plugin_name: str):
    @functools.wraps(function)
    def recorded(*args):
        result = function(*args)
        answers = _answers.get()
        if answers is not None and result is not None:
            answers.append((hook_name, plugin_name, result))
        return result

    recorded.tuning_core_recorded = True  # type: ignore[attr-defined]
    return recorded


def _call_recording(pm: pluggy.PluginManager, hook_name: str, kwargs: dict):
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        if not (impl.hookwrapper or impl.wrapper or getattr(impl.function, "tuning_core_recorded", False)):
            impl.function = _recorded(impl.function, hook_name, impl.plugin_name)
    answers: list = []
    token = _answers.set(answers)
    try:
        result = hook(**kwargs)
    finally:
        _answers.reset(token)
    # Nested hook calls made by an implementation record into their own list; filter by name all the same.
    return result, [(name, answer) for hook, name, answer in answers if hook == hook_name]


def _answered_by(result, answers: list) -> str | None:
    for name, answer in answers:
        if answer is result:
            return name
    return answers[-1][0] if answers else None  # a wrapper replaced the answer: credit the plugin that gave it


def call_first(pm: pluggy.PluginManager, hook_name: str, **kwargs):
    """Call a firstresult hook through pluggy and say which plugin answered: (name, result)."""
    result, answers = _call_recording(pm, hook_name, kwargs)
    if result is None:
        return None, None
    return _answered_by(result, answers), result


def call_all(pm: pluggy.PluginManager, hook_name: str, **kwargs):
    """Call a collecting hook through pluggy and pair each non-None result with its plugin: [(name, result)]."""
    results, answers = _call_recording(pm, hook_name, kwargs)
    return [(_answered_by(result, answers), result) for result in results]


def plugin_details(pm: pluggy.PluginManager, name: str) -> dict:
    """The merged ``tuning_core_plugin_details`` answers of plugin ``name`` alone."""
    plugin = pm.get_plugin(name)
    others = [p for p in pm.get_plugins() if p is not plugin]
    details: dict = {}
    for part in pm.subset_hook_caller("tuning_core_plugin_details", remove_plugins=others)():
        details.update(part or {})
    return details


def hooks_implemented(pm: pluggy.PluginManager, name: str) -> list[str]:
    plugin = pm.get_plugin(name)
    return sorted(c.name for c in pm.get_hookcallers(plugin) or [])
