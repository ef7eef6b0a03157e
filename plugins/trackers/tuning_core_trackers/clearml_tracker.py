"""Record a training run as a ClearML task (a ClearML server, or offline into ClearML's cache folder)."""

from __future__ import annotations

from tuning_core_trackers.callback import TrackerCallback
from tuning_core_trackers.records import as_text
from tuning_core_trackers.settings import ClearmlSettings

SUMMARY = "timings"


def clearml_series(key: str) -> tuple[str, str]:
    """Trainer key -> ClearML (title, series): `loss` and `eval_loss` are one plot with two lines."""
    if key.startswith("eval_"):
        return key[len("eval_") :], "val"
    return key, "train"


class ClearmlTracker(TrackerCallback):
    name = "clearml"

    def __init__(self, settings: ClearmlSettings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self._task = None

    def _open(self) -> dict:
        from clearml import Task

        if self.settings.offline:
            Task.set_offline(offline_mode=True)
        # Everything automatic is off: ClearML would otherwise patch frameworks, argparse and stdout
        # process-wide; this tracker reports only what the trainer logs.
        self._task = Task.init(
            project_name=self.settings.project,
            task_name=self.settings.task,
            reuse_last_task_id=False,
            auto_connect_frameworks=False,
            auto_connect_arg_parser=False,
            auto_connect_streams=False,
            auto_resource_monitoring=False,
        )
        info = {"task_id": self._task.id, "project": self.settings.project, "task": self.settings.task}
        if self.settings.offline:
            info["offline_folder"] = str(self._task.get_offline_mode_folder())
        else:
            info["task_uri"] = self._task.get_output_log_web_page()
        return info

    def _log_params(self, hparams: dict, metadata: dict) -> None:
        self._task.connect({k: as_text(v) for k, v in hparams.items()}, name="hparams")
        if metadata:
            self._task.connect({k: as_text(v) for k, v in metadata.items()}, name="exp_metadata")

    def _log_metrics(self, metrics: dict[str, float], step: int, epoch: float | None) -> None:
        logger = self._task.get_logger()
        for key, value in metrics.items():
            title, series = clearml_series(key)
            logger.report_scalar(title=title, series=series, value=value, iteration=step)
        if epoch is not None:
            logger.report_scalar(title="epoch", series="train", value=epoch, iteration=step)

    def _log_timings(self, timings: dict[str, float], step: int) -> None:
        logger = self._task.get_logger()
        for key, value in timings.items():
            logger.report_scalar(title=SUMMARY, series=key, value=value, iteration=step)

    def _close(self, ok: bool) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not ok:
            task.mark_failed(ignore_errors=True, status_reason="tracker failure")
        task.close()
