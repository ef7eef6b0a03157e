"""Trainer controller: stop, save, evaluate or log when user-written rules over training metrics hold.

The YAML format follows fms-hf-tuning (see docs/controller.md). Plugin authors
subclass ``MetricHandler`` or ``Operation`` and return them from the
``tuning_core_controller_components`` hook. Importing this package does not
import torch or transformers; ``TrainerControllerCallback`` does.
"""

from tuning_core.controller.events import TRAINER_EVENTS, Event
from tuning_core.controller.metrics import MetricHandler
from tuning_core.controller.operations import Operation
from tuning_core.controller.registry import builtin_components, gather_components, merge_components
from tuning_core.controller.rules import CompiledRule, MetricUnavailable, compile_rule
from tuning_core.controller.spec import ControllerPlan, load_plan, plan_from_dict

__all__ = [
    "TRAINER_EVENTS",
    "CompiledRule",
    "ControllerPlan",
    "Event",
    "MetricHandler",
    "MetricUnavailable",
    "Operation",
    "TrainerControllerCallback",
    "builtin_components",
    "compile_rule",
    "gather_components",
    "load_plan",
    "merge_components",
    "plan_from_dict",
]


def __getattr__(name):
    if name == "TrainerControllerCallback":  # imports transformers, so only on demand
        from tuning_core.controller.callback import TrainerControllerCallback

        return TrainerControllerCallback
    raise AttributeError(name)
