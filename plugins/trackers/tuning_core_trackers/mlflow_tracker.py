"""Record a training run in an MLflow tracking store (SQLite by default, a file store or a server)."""

from __future__ import annotations

import os
import time

from tuning_core_trackers.callback import TrackerCallback
from tuning_core_trackers.records import as_text, mlflow_key
from tuning_core_trackers.settings import MlflowSettings

METADATA_PREFIX = "exp_metadata."


class MlflowTracker(TrackerCallback):
    name = "mlflow"

    def __init__(self, settings: MlflowSettings, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self._client = None
        self._run_id: str | None = None
        self._last_epoch: tuple[int, float] | None = None

    def _open(self) -> dict:
        if self.settings.file_store:
            # MLflow 3 refuses its folder store unless opted in; the user asked for a folder.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        # A client, not mlflow.start_run(): no process-global active run to leak into user code.
        self._client = MlflowClient(tracking_uri=self.settings.tracking_uri)
        experiment_id = self._experiment_id()
        run = self._client.create_run(experiment_id, run_name=self.run_name, tags={"mlflow.source.name": "tuning-core"})
        self._run_id = run.info.run_id
        return {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "run_uri": f"runs:/{run.info.run_id}",
            "experiment_id": experiment_id,
            "experiment": self.settings.experiment,
            "tracking_uri": self.settings.tracking_uri,
        }

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        existing = self._client.get_experiment_by_name(self.settings.experiment)
        if existing is not None:
            return existing.experiment_id
        try:
            return self._client.create_experiment(
                self.settings.experiment, artifact_location=self.settings.artifact_location
            )
        except MlflowException:  # another run created it between our two calls
            existing = self._client.get_experiment_by_name(self.settings.experiment)
            if existing is None:
                raise
            return existing.experiment_id

    def _log_params(self, hparams: dict, metadata: dict) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        # Metadata keys are prefixed so they can never clash with a config field of the same name.
        items = {mlflow_key(k): as_text(v) for k, v in hparams.items()}
        items.update({mlflow_key(METADATA_PREFIX + str(k)): as_text(v) for k, v in metadata.items()})
        params = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in items.items()]
        for start in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, params=params[start : start + MAX_PARAMS_TAGS_PER_BATCH])

    def _log_metrics(self, metrics: dict[str, float], step: int, epoch: float | None) -> None:
        # The trainer repeats the epoch in every log; record each (step, epoch) point once.
        if epoch is not None and (step, epoch) != self._last_epoch:
            metrics = {**metrics, "epoch": epoch}
            self._last_epoch = (step, epoch)
        self._log_batch(metrics, step)

    def _log_timings(self, timings: dict[str, float], step: int) -> None:
        self._log_batch(timings, step)

    def _log_batch(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        # One batch per trainer log: one write to the store instead of one per metric.
        self._client.log_batch(self._run_id, metrics=[Metric(mlflow_key(k), v, stamp, step) for k, v in values.items()])

    def _close(self, ok: bool) -> None:
        client, self._client = self._client, None
        if client is not None and self._run_id is not None:
            client.set_terminated(self._run_id, status="FINISHED" if ok else "FAILED")
