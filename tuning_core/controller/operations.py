"""Operations: what a controller does when its rule holds.

A controller names actions as ``<operation name>.<action>``. Two operations
exist without being declared: ``hfcontrols`` (every ``TrainerControl.should_*``
flag, e.g. ``hfcontrols.should_training_stop``) and ``logcontrol``
(``logcontrol.should_log`` logs that the controller fired). Declaring an
operation with one of those names replaces the default.
"""

from __future__ import annotations

import _string  # the str.format field parser; used to refuse private attribute access
import logging
import string
from typing import Any

from tuning_core.controller.events import Event

logger = logging.getLogger("tuning_core.controller")

# The boolean fields of transformers.TrainerControl (checked against it in the tests).
TRAINER_CONTROL_FLAGS = ("should_training_stop", "should_epoch_stop", "should_save", "should_evaluate", "should_log")


class Operation:
    """Base class for operations (plugins subclass it).

    Every public method named ``should_<something>`` is an action. Actions are
    called as ``action(event=Event, metrics={name: value}, controller=name)``.
    YAML ``arguments`` arrive as keyword arguments of ``__init__`` after ``name``;
    raise ``ValueError`` for bad ones.
    """

    def __init__(self, name: str):
        self.name = name

    def actions(self) -> set[str]:
        return {a for a in dir(self) if a.startswith("should_") and callable(getattr(self, a))}

    def act(self, action: str, event: Event, metrics: dict[str, Any], controller: str) -> None:
        getattr(self, action)(event=event, metrics=metrics, controller=controller)


class HFControls(Operation):
    """Sets the matching flag of the trainer's ``TrainerControl`` (stop, save, evaluate, log)."""

    def actions(self) -> set[str]:
        return set(TRAINER_CONTROL_FLAGS)

    def act(self, action: str, event: Event, metrics: dict[str, Any], controller: str) -> None:
        setattr(event.control, action, True)


MAX_FORMAT_WIDTH = 1000  # width/precision in a log format spec: ``{x:>200000000}`` would write 200 MB a line
MAX_MESSAGE_CHARS = 10_000


class _SafeFormatter(string.Formatter):
    """str.format without access to private or dunder attributes (``{args.__class__}``) or huge widths."""

    def get_field(self, field_name, args, kwargs):
        check_format_field(field_name)
        return super().get_field(field_name, args, kwargs)

    def format_field(self, value, format_spec):
        check_format_spec(format_spec)  # again here: a nested spec ({x:{w}}) is only known now
        return super().format_field(value, format_spec)


def check_format_spec(spec: str) -> None:
    import re

    widths = [int(n) for n in re.findall(r"\d+", spec or "")]
    if widths and max(widths) > MAX_FORMAT_WIDTH:
        raise ValueError(f"format spec '{spec[:40]}' asks for a width or precision over {MAX_FORMAT_WIDTH}")


def check_format_field(field_name: str) -> None:
    _, rest = _string.formatter_field_name_split(field_name)
    for is_attr, key in rest:
        if is_attr and str(key).startswith("_"):
            raise ValueError(f"'{field_name}' reads a private attribute, which log formats may not do")


class LogControl(Operation):
    """Logs a message built from ``log_format`` with ``str.format`` fields:
    ``event_name``, ``control_name``, ``args``, ``state``, the event's own values
    (``path``, ``is_final``, ``logs``, ``metrics``) and every metric by name."""

    DEFAULT_FORMAT = "trainer controller '{control_name}' fired at {event_name} (step {state.global_step})"

    def __init__(self, name: str, log_format: str = DEFAULT_FORMAT, log_level: str = "info"):
        super().__init__(name)
        level = logging.getLevelName(str(log_level).upper())
        if not isinstance(level, int):
            raise ValueError(f"log_level must be debug, info, warning, error or critical, not {log_level!r}")
        if not isinstance(log_format, str):
            raise ValueError("log_format must be a string")
        for _, field_name, spec, _ in string.Formatter().parse(log_format):
            if field_name is not None:
                check_format_field(field_name)
            check_format_spec(spec)
            if spec and "{" in spec:
                for _, inner, _, _ in string.Formatter().parse(spec):
                    if inner is not None:
                        check_format_field(inner)
        self.log_format = log_format
        self.log_level = level

    def should_log(self, event: Event, metrics: dict[str, Any], controller: str) -> None:
        fields = {
            "event_name": event.name,
            "control_name": controller,
            "args": event.args,
            "state": event.state,
            **event.extra,
            **metrics,
        }
        try:
            message = _SafeFormatter().vformat(self.log_format, (), fields)
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as e:
            logger.warning("log operation '%s' could not format its message: %s: %s", self.name, type(e).__name__, e)
            return
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + f"... ({len(message):,} characters)"
        logger.log(self.log_level, message)


BUILTIN_OPERATIONS: dict[str, type[Operation]] = {cls.__name__: cls for cls in (HFControls, LogControl)}

# Operation instances every controller config has unless it declares the same name.
DEFAULT_OPERATIONS: dict[str, tuple[str, dict]] = {
    "hfcontrols": ("HFControls", {}),
    "logcontrol": ("LogControl", {}),
}
