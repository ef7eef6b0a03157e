"""Metric handlers: turn trainer events into the values a controller rule reads.

A handler is named in the YAML (``controller_metrics: - name: loss_window,
class: HistoryBasedMetric, arguments: {window_size: 5}``); the rule then reads
``loss_window[...]``. Handlers run at the events listed in ``events``; the
value stays as last computed until they run again. ``None`` means "not
computed yet", and rules that need it are skipped.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import fields
from typing import Any

from tuning_core.controller.events import TRAINER_EVENTS, Event


class MetricHandler:
    """Base class for metric handlers (plugins subclass it).

    Subclasses accept their YAML ``arguments`` as keyword arguments of
    ``__init__`` (after ``name``), set ``events`` and implement ``compute``.
    Raise ``ValueError`` for bad arguments: it becomes a config error.
    """

    events: tuple[str, ...] = ()

    def __init__(self, name: str):
        self.name = name

    def check(self, training_args: Any) -> None:
        """Optional: raise ValueError if the training arguments make this metric unusable."""

    def compute(self, event: Event) -> Any:
        raise NotImplementedError


class Loss(MetricHandler):
    """The latest training log entry that has a loss: ``{"loss", "learning_rate", "grad_norm", "epoch", ...}``."""

    events = ("on_log",)

    def compute(self, event: Event) -> Any:
        for entry in reversed(event.state.log_history):
            if "loss" in entry:
                return dict(entry)
        return None


class TrainingState(MetricHandler):
    """The trainer state as a dict (``epoch``, ``global_step``, ``max_steps``, ``log_history``, ...)
    plus ``is_final``, true on the save at the last step."""

    events = tuple(e for e in TRAINER_EVENTS if e not in ("on_pre_optimizer_step", "on_push_begin"))

    def compute(self, event: Event) -> Any:
        state = event.state
        values = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "stateful_callbacks"}
        values["is_final"] = bool(event.extra.get("is_final", False))
        return values


class EvalMetrics(MetricHandler):
    """The metrics of the latest evaluation (``eval_loss``, ``eval_runtime``, ...)."""

    def __init__(self, name: str, source_event: str = "on_evaluate"):
        super().__init__(name)
        if source_event not in ("on_evaluate", "on_predict"):
            raise ValueError(f"source_event must be on_evaluate or on_predict, not {source_event!r}")
        self.events = (source_event,)

    def compute(self, event: Event) -> Any:
        metrics = event.extra.get("metrics")
        return dict(metrics) if metrics is not None else None


class HistoryBasedMetric(MetricHandler):
    """A sliding window over recent training losses and evaluation metrics.

    Value: ``{"training_loss": {"loss": [...], "steps": [...], "epoch": [...]},
    "metrics": {"eval_loss": [...], "steps": [...], "epoch": [...], ...},
    "window_size": N}``, oldest first. ``window_size: -1`` keeps everything.
    ``metrics`` stays empty until the first evaluation.
    """

    events = ("on_log", "on_evaluate")

    def __init__(self, name: str, window_size: int = 1):
        super().__init__(name)
        if isinstance(window_size, bool) or not isinstance(window_size, int) or (window_size < 1 and window_size != -1):
            raise ValueError(f"window_size must be a positive integer or -1 (unbounded), not {window_size!r}")
        self.window_size = window_size
        self._training: dict[str, deque] = {k: self._new() for k in ("loss", "steps", "epoch")}
        self._metrics: dict[str, deque] = {}

    def _new(self) -> deque:
        return deque(maxlen=None if self.window_size == -1 else self.window_size)

    def compute(self, event: Event) -> Any:
        state = event.state
        if event.name == "on_log":
            logs = event.extra.get("logs") or {}
            if "loss" in logs:
                for key, value in (("loss", float(logs["loss"])), ("steps", state.global_step), ("epoch", state.epoch)):
                    self._training[key].append(value)
        elif event.name == "on_evaluate" and event.extra.get("metrics") is not None:
            row = {**event.extra["metrics"], "steps": state.global_step, "epoch": state.epoch}
            for key, value in row.items():
                self._metrics.setdefault(key, self._new()).append(value)
        return {
            "training_loss": {k: list(v) for k, v in self._training.items()},
            "metrics": {k: list(v) for k, v in self._metrics.items()},
            "window_size": self.window_size,
        }


class PerProcessState(MetricHandler):
    """This process's place in a distributed run: ``{"rank", "local_rank", "world_size"}``."""

    events = TrainingState.events

    def compute(self, event: Event) -> Any:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        else:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        return {"rank": rank, "local_rank": int(os.environ.get("LOCAL_RANK", rank)), "world_size": world}


BUILTIN_METRICS: dict[str, type[MetricHandler]] = {
    cls.__name__: cls for cls in (Loss, TrainingState, EvalMetrics, HistoryBasedMetric, PerProcessState)
}
