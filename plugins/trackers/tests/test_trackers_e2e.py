"""One real training run recorded by Aim and MLflow at once, read back through each library's API.

The reference is the core's training_logs.jsonl: every loss each tracker holds
must be the same value at the same step.
"""

import json
import math
import os

import pytest

pytestmark = pytest.mark.slow

METADATA = {"gpu": "none", "team": {"name": "tuning"}, "runs": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_args, small_validation):
    from tuning_core.pipeline import run_training
    from tuning_core.testing.plugins import only_plugins

    out = tmp_path_factory.mktemp("e2e") / "run-a"
    with only_plugins("trackers"):  # module scope: the autouse plugin fixture is not active yet
        result = run_training(
            train_args(
                out,
                "--trackers",
                "file_logger",
                "aim",
                "mlflow",
                "--experiment",
                "exp-e2e",
                "--exp_metadata",
                json.dumps(METADATA),
                "--validation_data_path",
                str(small_validation),
                "--eval_strategy",
                "steps",
                "--eval_steps",
                "2",
            )
        )
    return out, result


def test_file_log_is_the_reference(trained, file_log):
    out, _ = trained
    log = file_log(out)
    assert [s for s, _ in log["training_loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in log["validation_loss"]] == [2, 4]


def test_aim_run_holds_every_metric_at_its_step(trained, file_log, aim_reader):
    out, _result = trained
    info, run, series = aim_reader(out / "aim_tracker.json")
    log = file_log(out)
    assert info["repo"] == str(out / "aim")  # the documented default repository
    assert run.experiment == "exp-e2e" and run.name == "run-a"
    assert series[("loss", "train")] == log["training_loss"]
    assert series[("loss", "val")] == log["validation_loss"]
    for name in ("learning_rate", "grad_norm"):
        assert [s for s, _ in series[(name, "train")]] == [1, 2, 3, 4]
    assert series[("learning_rate", "train")][0][1] == pytest.approx(1e-3)
    for name in ("train_runtime", "train_loss", "train_samples_per_second"):
        assert [s for s, _ in series[(name, "train")]] == [4]
    assert [s for s, _ in series[("runtime", "val")]] == [2, 4]


def test_aim_run_holds_config_timings_and_metadata(trained, aim_reader):
    out, result = trained
    _, run, series = aim_reader(out / "aim_tracker.json")
    hparams = run["hparams"]
    assert set(hparams) == set(result.config.to_dict())
    assert hparams["learning_rate"] == pytest.approx(1e-3)
    assert hparams["trackers"] == ["file_logger", "aim", "mlflow"]
    assert hparams["peft_method"] == "lora" and hparams["max_steps"] == 4
    assert hparams["lr_scheduler_type"] == "linear"  # an enum in the trainer's args, plain text here
    assert run["exp_metadata"] == METADATA
    for key in ("model_load_seconds", "data_preprocessing_seconds"):
        ((step, seconds),) = series[(key, "timings")]
        assert step == 0 and seconds > 0 and seconds == run["timings"][key]


def test_mlflow_run_holds_every_metric_at_its_step(trained, file_log, mlflow_reader):
    out, _ = trained
    info, run, series, client = mlflow_reader(out / "mlflow_tracker.json")
    log = file_log(out)
    assert info["tracking_uri"] == f"sqlite:///{out}/mlflow/mlflow.db"  # the documented default store
    assert run.info.status == "FINISHED" and run.info.run_name == "run-a"
    assert client.get_experiment(run.info.experiment_id).name == "exp-e2e"
    assert series["loss"] == log["training_loss"]
    assert series["eval_loss"] == log["validation_loss"]
    for name in ("learning_rate", "grad_norm", "epoch"):
        assert [s for s, _ in series[name]] == [1, 2, 3, 4]
    for name in ("train_runtime", "train_loss", "total_flos"):
        assert [s for s, _ in series[name]] == [4]
    assert [s for s, _ in series["eval_runtime"]] == [2, 4]


def test_mlflow_run_holds_config_timings_and_metadata(trained, mlflow_reader):
    out, result = trained
    _, run, series, _ = mlflow_reader(out / "mlflow_tracker.json")
    params = run.data.params
    config = result.config.to_dict()
    assert set(config) <= set(params)
    assert float(params["learning_rate"]) == pytest.approx(1e-3)
    assert json.loads(params["trackers"]) == ["file_logger", "aim", "mlflow"]
    assert params["model_name_or_path"] == config["model_name_or_path"]
    assert params["exp_metadata.gpu"] == "none" and params["exp_metadata.runs"] == "3"
    assert json.loads(params["exp_metadata.team"]) == METADATA["team"]
    for key in ("model_load_seconds", "data_preprocessing_seconds"):
        ((step, seconds),) = series[key]
        assert step == 0 and seconds > 0 and math.isfinite(seconds)


def test_run_ids_exported_and_named_in_the_banner(trained):
    out, result = trained
    aim_info = json.loads((out / "aim_tracker.json").read_text())
    mlflow_info = json.loads((out / "mlflow_tracker.json").read_text())
    assert len(aim_info["run_hash"]) >= 16
    assert mlflow_info["run_uri"] == f"runs:/{mlflow_info['run_id']}"
    banner = "\n".join(result.banner)
    assert "callbacks AimTracker, MlflowTracker" in banner
    assert str(out / "aim_tracker.json") in banner and str(out / "mlflow_tracker.json") in banner
    assert os.path.isdir(out / "aim" / ".aim")
