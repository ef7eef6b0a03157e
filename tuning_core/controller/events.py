"""Trainer events a controller can react to, and what a handler sees at each one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The `on_*` methods of transformers.TrainerCallback (checked against it in the tests),
# listed here so validating a config does not import transformers.
TRAINER_EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_prediction_step",
    "on_save",
    "on_log",
    "on_push_begin",
)


@dataclass
class Event:
    """One trainer event as handed to metric handlers and operations.

    ``extra`` holds the event's own keyword arguments: ``logs`` (on_log),
    ``metrics`` (on_evaluate/on_predict), ``path`` and ``is_final`` (on_save),
    ``model``, ``optimizer``, ...
    """

    name: str
    args: Any  # transformers.TrainingArguments
    state: Any  # transformers.TrainerState
    control: Any  # transformers.TrainerControl
    extra: dict[str, Any] = field(default_factory=dict)
