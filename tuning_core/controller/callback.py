"""The TrainerCallback that runs controllers: compute metrics, evaluate rules, act."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from transformers import TrainerCallback

from tuning_core.controller.events import TRAINER_EVENTS, Event
from tuning_core.controller.patience import Patience
from tuning_core.controller.rules import MetricUnavailable, RuleRuntimeError
from tuning_core.controller.spec import ControllerPlan, ControllerSpec
from tuning_core.errors import ConfigError

logger = logging.getLogger("tuning_core.controller")


@dataclass
class Firing:
    """One time a controller's operations ran (kept for tests, banners and post-mortems)."""

    controller: str
    event: str
    step: int
    actions: tuple[str, ...]


@dataclass
class _Runtime:
    spec: ControllerSpec
    patience: Patience | None
    evaluated: int = 0  # times the rule produced True/False
    last_skip: str | None = None  # why the rule was last skipped (value not available)
    skipped: int = 0


@dataclass
class _EventPlan:
    metrics: list = field(default_factory=list)
    controls: list = field(default_factory=list)


class TrainerControllerCallback(TrainerCallback):
    """Applies a checked ``ControllerPlan`` to a training run."""

    def __init__(self, plan: ControllerPlan):
        self.plan = plan
        self.metric_handlers = plan.new_metrics()
        self.operations = plan.new_operations()
        self.values: dict = {name: None for name in self.metric_handlers}  # None = not computed yet
        self.firings: list[Firing] = []
        self._runtimes = [_Runtime(c, Patience(*c.patience) if c.patience else None) for c in plan.controllers]
        self._by_event: dict[str, _EventPlan] = {e: _EventPlan() for e in TRAINER_EVENTS}
        for handler in self.metric_handlers.values():
            for e in handler.events:
                self._by_event[e].metrics.append(handler)
        for rt in self._runtimes:
            for e in rt.spec.triggers:
                self._by_event[e].controls.append(rt)

    def _handle(self, event_name, args, state, control, **kwargs):
        todo = self._by_event[event_name]
        if not todo.metrics and not todo.controls:
            return control
        extra = dict(kwargs)
        if event_name == "on_save":
            extra.setdefault("path", os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))
            extra.setdefault("is_final", bool(state.max_steps) and state.global_step >= state.max_steps)
        event = Event(event_name, args, state, control, extra)
        for handler in todo.metrics:
            self.values[handler.name] = handler.compute(event)
        if event_name == "on_log" and "train_runtime" in (kwargs.get("logs") or {}):
            # The end-of-training summary: nothing left to control, and rules would re-fire on stale values.
            return control
        for rt in todo.controls:
            self._run_controller(rt, event)
        return control

    def _run_controller(self, rt: _Runtime, event: Event) -> None:
        spec = rt.spec
        try:
            held = spec.rule.evaluate(self.values)
        except MetricUnavailable as e:
            rt.skipped += 1
            rt.last_skip = str(e)
            logger.debug("controller '%s' skipped at %s: %s", spec.name, event.name, e)
            return
        except RuleRuntimeError as e:
            raise ConfigError(
                f"{self.plan.source}: controller '{spec.name}': rule {spec.rule.text!r} failed at "
                f"{event.name} (step {event.state.global_step}): {e}"
            ) from None
        rt.evaluated += 1
        if rt.patience is not None:
            held = rt.patience.should_act(held)
        if not held:
            return
        names = tuple(f"{op}.{action}" for op, action in spec.actions)
        logger.log(
            spec.log_level,
            "trainer controller '%s' fired at %s (step %s): %s",
            spec.name,
            event.name,
            event.state.global_step,
            ", ".join(names),
        )
        self.firings.append(Firing(spec.name, event.name, event.state.global_step, names))
        metrics = dict(self.values)
        for op_name, action in spec.actions:
            self.operations[op_name].act(action, event, metrics, spec.name)

    def _report_silent_controllers(self) -> None:
        for rt in self._runtimes:
            if rt.evaluated == 0 and rt.skipped:
                logger.warning(
                    "trainer controller '%s' never ran: its rule could not be evaluated (last reason: %s)",
                    rt.spec.name,
                    rt.last_skip,
                )


def _make_event_method(event_name: str):
    def method(self, args, state, control, **kwargs):
        result = self._handle(event_name, args, state, control, **kwargs)
        if event_name == "on_train_end":
            self._report_silent_controllers()
        return result

    method.__name__ = event_name
    method.__doc__ = f"Run the metrics and controllers registered for {event_name}."
    return method


for _event in TRAINER_EVENTS:
    setattr(TrainerControllerCallback, _event, _make_event_method(_event))
del _event
