"""A tracker whose storage breaks mid-run is reported once and switched off; training goes on.

The break is real: after step 2 is logged, the Aim repository and the MLflow
store are made immutable (`chattr +i`, which stops root too), so every later
write fails inside the tracker libraries themselves.
"""

import json
import logging
import shutil
import subprocess

import pytest

from tuning_core.plugin_api import hookimpl

pytestmark = pytest.mark.slow


def _chattr(flag, *paths):
    subprocess.run(["chattr", "-R", flag, *map(str, paths)], check=True, capture_output=True)


class FreezeStores:
    """A plugin whose callback makes the given folders unwritable once `step` is reached."""

    def __init__(self, step, *paths):
        self.step, self.paths = step, paths
        self.frozen_at = None

    @hookimpl
    def tuning_core_trainer_callbacks(self, config, run):
        from transformers import TrainerCallback

        plugin = self

        class Freeze(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if plugin.frozen_at is None and state.global_step >= plugin.step:
                    _chattr("+i", *plugin.paths)
                    plugin.frozen_at = state.global_step

        return [Freeze()]


def test_broken_stores_are_reported_once_and_training_completes(
    tmp_path, train_args, file_log, caplog, aim_reader, mlflow_reader
):
    from tuning_core.pipeline import run_training
    from tuning_core.plugins import get_plugin_manager

    assert shutil.which("chattr"), "this test needs chattr (e2fsprogs) to make the stores unwritable"
    out, aim_repo, mlruns, ids = tmp_path / "out", tmp_path / "aim-repo", tmp_path / "mlruns", tmp_path / "ids"
    aim_repo.mkdir()
    mlruns.mkdir()
    freeze = FreezeStores(2, aim_repo, mlruns)
    get_plugin_manager().register(freeze, name="test_freeze_stores")
    caplog.set_level(logging.WARNING, logger="tuning_core_trackers")
    try:
        result = run_training(
            train_args(
                out,
                "--trackers",
                "aim",
                "mlflow",
                "--aim_repo",
                str(aim_repo),
                "--mlflow_tracking_uri",
                str(mlruns),
                "--run_uri_export_path",
                str(ids),
                "--experiment",
                "shared",
                "--aim_experiment",
                "aim-only",
            )
        )
    finally:
        if freeze.frozen_at is not None:
            _chattr("-i", aim_repo, mlruns)

    # Training ran to the end and the core's file log is complete.
    assert freeze.frozen_at == 2
    assert result.train_output.global_step == 4
    assert [s for s, _ in file_log(out)["training_loss"]] == [1, 2, 3, 4]

    # Each tracker reported its failure exactly once, naming itself and the cause.
    reports = [r.getMessage() for r in caplog.records if r.name == "tuning_core_trackers"]
    assert len(reports) == 2, reports
    assert sum(m.startswith("aim tracker failed") for m in reports) == 1
    assert sum(m.startswith("mlflow tracker failed") for m in reports) == 1
    assert all("training continues" in m for m in reports)
    callbacks = {type(cb).__name__: cb for cb in result.trainer.callback_handler.callbacks}
    assert callbacks["AimTracker"].failure and callbacks["MlflowTracker"].failure

    # What was written before the break is intact and readable: the losses up to step 1.
    log = file_log(out)["training_loss"]
    _, aim_run, aim_series = aim_reader(ids / "aim_tracker.json")
    assert aim_run.experiment == "aim-only"
    assert aim_series[("loss", "train")] == log[:1]
    info, mlflow_run, mlflow_series, client = mlflow_reader(ids / "mlflow_tracker.json")
    assert client.get_experiment(mlflow_run.info.experiment_id).name == "shared"
    assert info["tracking_uri"] == str(mlruns)  # a folder: MLflow's file store
    assert mlflow_series["loss"] == log[:1]
    assert not (out / "aim_tracker.json").exists()  # --run_uri_export_path moved both exports
    assert json.loads((ids / "mlflow_tracker.json").read_text())["run_id"] == mlflow_run.info.run_id
