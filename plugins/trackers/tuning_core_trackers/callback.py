"""The trainer callback every tracker shares: when to record what, and fault isolation.

A tracker is a side channel: if its library or storage fails, the failure is
reported once and that tracker stops, while training (and the core's file log)
carries on. Subclasses only say how to talk to their library.
"""

from __future__ import annotations

import logging
import os

from transformers import TrainerCallback

from tuning_core_trackers.records import split_logs, write_run_info

logger = logging.getLogger("tuning_core_trackers")


class TrackerCallback(TrainerCallback):
    name = "tracker"

    def __init__(self, *, hparams: dict, metadata: dict, timings: dict, export_dir: str, run_name: str):
        self.hparams = hparams
        self.metadata = metadata
        self.timings = timings  # the live RunContext.timings: the core may add entries later
        self.export_dir = export_dir
        self.run_name = run_name
        self.run_info: dict | None = None  # what <name>_tracker.json holds, once the run is open
        self.failure: str | None = None
        self._recorded_timings: set[str] = set()
        self._enabled = True

    # --- what subclasses implement -------------------------------------------------
    def _open(self) -> dict:
        """Start a run; return the identifiers written to <name>_tracker.json."""
        raise NotImplementedError

    def _log_params(self, hparams: dict, metadata: dict) -> None:
        raise NotImplementedError

    def _log_metrics(self, metrics: dict[str, float], step: int, epoch: float | None) -> None:
        raise NotImplementedError

    def _log_timings(self, timings: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _close(self, ok: bool) -> None:
        raise NotImplementedError

    # --- trainer events ------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        # Open the run when the trainer is built, so opening a store (MLflow migrates a new
        # SQLite database, ~10 s) does not count towards train_runtime.
        self._guarded("trainer init", self._ensure_open, state)

    def on_train_begin(self, args, state, control, **kwargs):
        self._guarded("train begin", self._ensure_open, state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._guarded("log", self._record_logs, state, logs)

    def on_train_end(self, args, state, control, **kwargs):
        self._guarded("train end", self._finish, state)

    # --- flow ----------------------------------------------------------------------
    def _ensure_open(self, state) -> None:
        if self.run_info is not None:
            return
        self.run_info = self._open()
        write_run_info(self.export_dir, self.name, self.run_info)
        self._log_params(self.hparams, self.metadata)
        self._record_new_timings(state)

    def _record_logs(self, state, logs) -> None:
        self._ensure_open(state)
        metrics, epoch = split_logs(logs)
        if metrics:
            self._log_metrics(metrics, state.global_step, epoch)

    def _record_new_timings(self, state) -> None:
        new = {k: float(v) for k, v in self.timings.items() if k not in self._recorded_timings}
        if new:
            self._log_timings(new, state.global_step)
            self._recorded_timings.update(new)

    def _finish(self, state) -> None:
        self._ensure_open(state)
        self._record_new_timings(state)
        self._enabled = False
        self._close(ok=True)

    def _guarded(self, event: str, action, state, *args) -> None:
        if not state.is_world_process_zero:  # the plugin adds trackers on rank 0 only; belt and braces
            self._enabled = False
        if not self._enabled:
            return
        try:
            action(state, *args)
        except Exception as exc:  # any tracker fault: report once, keep training
            self._enabled = False
            self.failure = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "%s tracker failed at %s (step %s) and is switched off for the rest of this run; "
                "training continues. Cause: %s",
                self.name,
                event,
                state.global_step,
                self.failure,
            )
            try:
                self._close(ok=False)
            except Exception:  # the storage is already broken; nothing more to report
                pass


def default_run_name(output_dir: str) -> str:
    return os.path.basename(os.path.normpath(os.path.abspath(output_dir)))
