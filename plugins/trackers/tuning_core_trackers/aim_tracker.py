"""Record a training run in an Aim repository (local folder or remote `aim server`)."""

from __future__ import annotations

from tuning_core_trackers.callback import TrackerCallback
from tuning_core_trackers.settings import AimSettings

TRAIN, VAL = {"subset": "train"}, {"subset": "val"}
TIMINGS = {"subset": "timings"}


def aim_series(key: str) -> tuple[str, dict]:
    """Trainer key -> Aim (name, context): `eval_loss` and `loss` are one metric in two subsets,
    which is how Aim's UI compares training and validation curves."""
    if key.startswith("eval_"):
        return key[len("eval_") :], VAL
    return key, TRAIN


class AimTracker(TrackerCallback):
    name = "aim"

    def __init__(self, settings: AimSettings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self._run = None

    def _open(self) -> dict:
        from aim import Run

        # System-param logging is off: it needs pkg_resources, gone from current setuptools.
        # Terminal capture is off: it would replace sys.stdout for the whole process.
        self._run = Run(
            repo=self.settings.repo,
            experiment=self.settings.experiment,
            log_system_params=False,
            system_tracking_interval=None,
            capture_terminal_logs=False,
        )
        self._run.name = self.run_name
        return {"run_hash": self._run.hash, "repo": self.settings.repo, "experiment": self.settings.experiment}

    def _log_params(self, hparams: dict, metadata: dict) -> None:
        self._run["hparams"] = hparams
        if metadata:
            self._run["exp_metadata"] = metadata

    def _log_metrics(self, metrics: dict[str, float], step: int, epoch: float | None) -> None:
        for key, value in metrics.items():
            name, context = aim_series(key)
            self._run.track(value, name=name, step=step, epoch=epoch, context=context)

    def _log_timings(self, timings: dict[str, float], step: int) -> None:
        for key, value in timings.items():
            self._run.track(value, name=key, step=step, context=TIMINGS)
        self._run["timings"] = {k: float(v) for k, v in self.timings.items()}

    def _close(self, ok: bool) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.close()
