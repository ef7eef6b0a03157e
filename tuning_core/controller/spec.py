"""Read and check a trainer-controller YAML file (fms-hf-tuning format).

Everything that can be wrong with the file is found here, before training:
unknown keys, classes, triggers, operations or metric names, bad arguments,
rules that do not parse. Errors are ``ConfigError``s naming the file and the
controller, metric or operation at fault.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from tuning_core.controller.events import TRAINER_EVENTS
from tuning_core.controller.metrics import MetricHandler
from tuning_core.controller.operations import DEFAULT_OPERATIONS, Operation
from tuning_core.controller.patience import Patience
from tuning_core.controller.rules import CONSTANT_NAMES, FUNCTIONS, CompiledRule, RuleSyntaxError, compile_rule
from tuning_core.errors import ConfigError
from tuning_core.plugin_api import ControllerComponents

TOP_KEYS = ("controller_metrics", "operations", "controllers")
ENTRY_KEYS = ("name", "class", "arguments")
CONTROLLER_KEYS = ("name", "triggers", "rule", "operations", "patience", "config")
PATIENCE_KEYS = ("patience_threshold", "mode")
CONTROLLER_CONFIG_KEYS = ("trigger_log_level",)
DEFAULT_TRIGGER_LOG_LEVEL = "info"


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    triggers: tuple[str, ...]
    rule: CompiledRule
    actions: tuple[tuple[str, str], ...]  # (operation name, action name)
    patience: tuple[int, str] | None  # (patience_threshold, mode)
    log_level: int


@dataclass
class ControllerPlan:
    """A checked controller config; ``new_*`` build fresh (stateful) handler instances."""

    source: str
    metrics: dict[str, tuple[type[MetricHandler], dict]]
    operations: dict[str, tuple[type[Operation], dict]]
    controllers: list[ControllerSpec]

    def new_metrics(self) -> dict[str, MetricHandler]:
        return {name: cls(name, **args) for name, (cls, args) in self.metrics.items()}

    def new_operations(self) -> dict[str, Operation]:
        return {name: cls(name, **args) for name, (cls, args) in self.operations.items()}

    def check_training_args(self, training_args: Any) -> None:
        """Let each metric handler veto the training arguments; warn about triggers that cannot happen."""
        for name, handler in self.new_metrics().items():
            try:
                handler.check(training_args)
            except ValueError as e:
                raise ConfigError(f"{self.source}: metric '{name}': {e}") from None
        eval_strategy = str(
            getattr(
                getattr(training_args, "eval_strategy", None), "value", getattr(training_args, "eval_strategy", None)
            )
        )
        if eval_strategy == "no":
            for c in self.controllers:
                if "on_evaluate" in c.triggers:
                    logging.getLogger("tuning_core.controller").warning(
                        "%s: controller '%s' is triggered on on_evaluate but --eval_strategy is 'no', "
                        "so evaluation never runs and it will not fire there",
                        self.source,
                        c.name,
                    )


def read_controller_file(path: str) -> dict:
    """Load the YAML safely; a missing or malformed file is a ConfigError naming it."""
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"--trainer_controller_config_file: no such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"--trainer_controller_config_file {path}: not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--trainer_controller_config_file {path}: cannot read: {e}") from None
    return data


def load_plan(path: str, components: ControllerComponents) -> ControllerPlan:
    return plan_from_dict(read_controller_file(path), components, source=str(path))


def plan_from_dict(
    data: Any, components: ControllerComponents, source: str = "trainer controller config"
) -> ControllerPlan:
    def fail(where: str, msg: str):
        raise ConfigError(f"{source}: {where}: {msg}")

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(TOP_KEYS)}, got {type(data).__name__}")
    data = _normalise_keys(data)
    _check_keys(data, TOP_KEYS, lambda msg: fail("top level", msg))

    metrics = _entries(data, "controller_metrics", components.metrics, MetricHandler, "metric", fail)
    for name in metrics:
        if name in FUNCTIONS or name in CONSTANT_NAMES:
            fail(f"metric '{name}'", f"'{name}' is reserved in rules; choose another metric name")
    operations = {name: (components.operations[cls], args) for name, (cls, args) in DEFAULT_OPERATIONS.items()}
    operations.update(_entries(data, "operations", components.operations, Operation, "operation", fail))
    actions_of = {name: cls(name, **args).actions() for name, (cls, args) in operations.items()}

    controllers_raw = data.get("controllers")
    if not isinstance(controllers_raw, list) or not controllers_raw:
        fail("controllers", "there must be a list of at least one controller")
    controllers, seen = [], set()
    for i, raw in enumerate(controllers_raw):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw.get("name"):
            fail(f"controller #{i + 1}", "each controller needs a 'name' (and triggers, rule, operations)")
        raw = _normalise_keys(raw)
        name = raw["name"]
        where = f"controller '{name}'"
        if name in seen:
            fail(where, "two controllers have this name")
        seen.add(name)
        controllers.append(_controller(raw, where, metrics, actions_of, fail))
    return ControllerPlan(source=source, metrics=metrics, operations=operations, controllers=controllers)


def _controller(raw: dict, where: str, metrics: dict, actions_of: dict, fail) -> ControllerSpec:
    """One entry of ``controllers``: each key is checked by the parser named for it."""

    def fail_here(msg: str):
        fail(where, msg)

    _check_keys(raw, CONTROLLER_KEYS, fail_here)
    return ControllerSpec(
        name=raw["name"],
        triggers=_triggers(raw, fail_here),
        rule=_rule(raw, metrics, fail_here),
        actions=_actions(raw, actions_of, fail_here),
        patience=_patience(raw, where, fail),
        log_level=_log_level(raw, where, fail),
    )


def _one_or_list(value):
    return [value] if isinstance(value, str) else value


def _triggers(raw: dict, fail) -> tuple[str, ...]:
    triggers = _one_or_list(raw.get("triggers"))
    if not isinstance(triggers, list) or not triggers:
        fail("'triggers' must list at least one trainer event, e.g. [on_log]")
    for t in triggers:
        if t not in TRAINER_EVENTS:
            fail(f"unknown trigger {t!r}; valid triggers: {', '.join(TRAINER_EVENTS)}")
    return tuple(triggers)


def _rule(raw: dict, metrics: dict, fail):
    """The compiled rule; every name it reads must be a metric defined under controller_metrics."""
    if "rule" not in raw:
        fail("missing 'rule'")
    try:
        rule = compile_rule(raw["rule"])
    except RuleSyntaxError as e:
        fail(f"bad rule: {e}")
    unknown = sorted(rule.names - set(metrics))
    if unknown:
        defined = ", ".join(sorted(metrics)) or "none"
        fail(
            f"the rule uses {', '.join(repr(u) for u in unknown)}, which "
            f"{'is not a metric' if len(unknown) == 1 else 'are not metrics'} defined under "
            f"controller_metrics (defined: {defined})"
        )
    return rule


def _actions(raw: dict, actions_of: dict, fail) -> tuple[tuple[str, str], ...]:
    """``operations`` as (operation, action) pairs, each an action that defined operation has."""
    ops = _one_or_list(raw.get("operations"))
    if not isinstance(ops, list) or not ops:
        fail("'operations' must list at least one action, e.g. [hfcontrols.should_training_stop]")
    actions = []
    for op in ops:
        if not isinstance(op, str) or "." not in op:
            fail(f"operation {op!r} must look like <operation>.<action>, e.g. hfcontrols.should_save")
        op_name, action = op.split(".", 1)
        if op_name not in actions_of:
            fail(f"unknown operation '{op_name}' in {op!r}; defined operations: {', '.join(sorted(actions_of))}")
        if action not in actions_of[op_name]:
            fail(
                f"operation '{op_name}' has no action '{action}'; its actions: {', '.join(sorted(actions_of[op_name]))}"
            )
        actions.append((op_name, action))
    return tuple(actions)


def _patience(raw: dict, where: str, fail) -> tuple[int, str] | None:
    if raw.get("patience") is None:
        return None
    p = raw["patience"]
    if not isinstance(p, dict):
        fail(where, "'patience' must be a mapping with patience_threshold (and optionally mode)")
    p = _normalise_keys(p)
    _check_keys(p, PATIENCE_KEYS, lambda msg: fail(where + " patience", msg))
    try:
        checked = Patience(p.get("patience_threshold", 1), p.get("mode", "reset_on_failure"))
    except ValueError as e:
        fail(where, str(e))
    return checked.threshold, checked.mode


def _log_level(raw: dict, where: str, fail) -> int:
    """The logging level of the line a firing controller writes (``config.trigger_log_level``)."""
    level_name = DEFAULT_TRIGGER_LOG_LEVEL
    if raw.get("config") is not None:
        cfg = raw["config"]
        if not isinstance(cfg, dict):
            fail(where, "'config' must be a mapping, e.g. {trigger_log_level: warning}")
        cfg = _normalise_keys(cfg)
        _check_keys(cfg, CONTROLLER_CONFIG_KEYS, lambda msg: fail(where + " config", msg))
        level_name = str(cfg.get("trigger_log_level", level_name))
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        fail(where, f"trigger_log_level must be debug, info, warning, error or critical, not {level_name!r}")
    return level


def _entries(data: dict, key: str, classes: dict, base: type, kind: str, fail) -> dict:
    """Parse the controller_metrics or operations list into {name: (class, arguments)}."""
    raw = data.get(key) or []
    if not isinstance(raw, list):
        fail(key, "must be a list of {name, class, arguments} entries")
    out = {}
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            fail(f"{key} #{i + 1}", "must be a mapping with 'name' and 'class'")
        entry = _normalise_keys(entry)
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            fail(f"{key} #{i + 1}", f"'name' must be a Python-style identifier not starting with '_', got {name!r}")
        where = f"{kind} '{name}'"
        _check_keys(entry, ENTRY_KEYS, lambda msg, where=where: fail(where, msg))
        if name in out:
            fail(where, f"two {kind}s have this name")
        cls_name = entry.get("class")
        if cls_name not in classes:
            fail(where, f"unknown class {cls_name!r}; available: {', '.join(sorted(classes))} (plugins can add more)")
        args = entry.get("arguments") or {}
        if not isinstance(args, dict):
            fail(where, "'arguments' must be a mapping")
        args = _normalise_keys(args)
        cls = classes[cls_name]
        try:
            cls(name, **args)  # construct once so bad arguments surface now, not mid-training
        except TypeError as e:
            fail(where, f"bad arguments for {cls_name}: {e}")
        except ValueError as e:
            fail(where, f"{cls_name}: {e}")
        out[name] = (cls, args)
    return out


def _normalise_keys(d: dict) -> dict:
    # Older fms-hf-tuning files spell keys with hyphens (controller-metrics, window-size).
    return {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in d.items()}


def _check_keys(d: dict, allowed: tuple[str, ...], fail) -> None:
    unknown = [k for k in d if k not in allowed]
    if unknown:
        fail(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}; "
            f"expected {', '.join(allowed)}"
        )
