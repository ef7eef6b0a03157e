"""Tracker flags through the real config parser and validate hook: settings, errors, rank 0 only."""

import subprocess
import sys

import pytest

from tuning_core.errors import ConfigError
from tuning_core.plugin_api import RunContext
from tuning_core.testing.tiny import bundled_dataset_path

BASE = ["--model_name_or_path", "m", "--training_data_path", str(bundled_dataset_path()), "--output_dir"]


def _config(tmp_path, *flags):
    from tuning_core.config import load_train_config

    return load_train_config(BASE + [str(tmp_path / "out"), *flags])


def _validate(tmp_path, *flags):
    from tuning_core.plugins import get_plugin_manager

    config = _config(tmp_path, *flags)
    get_plugin_manager().hook.tuning_core_validate_config(config=config)
    return config


def _error(tmp_path, *flags) -> str:
    with pytest.raises(ConfigError) as err:
        _validate(tmp_path, *flags)
    return str(err.value)


def test_flags_parse_with_fms_names(tmp_path):
    config = _validate(
        tmp_path,
        "--trackers",
        "aim",
        "mlflow",
        "--aim_repo",
        "r",
        "--aim_experiment",
        "a",
        "--mlflow_tracking_uri",
        "sqlite:///x.db",
        "--mlflow_experiment",
        "m",
        "--experiment",
        "e",
        "--exp_metadata",
        '{"k": 1}',
        "--run_uri_export_path",
        "ids",
    )
    assert (config.aim_repo, config.aim_experiment, config.experiment) == ("r", "a", "e")
    assert (config.mlflow_tracking_uri, config.mlflow_experiment) == ("sqlite:///x.db", "m")
    assert config.exp_metadata == '{"k": 1}' and config.run_uri_export_path == "ids"


def test_defaults_live_under_output_dir(tmp_path):
    from tuning_core_trackers import settings

    config = _validate(tmp_path, "--trackers", "aim", "mlflow", "--experiment", "e")
    out = str(tmp_path / "out")
    aim = settings.aim_settings(config, out)
    assert (aim.repo, aim.experiment, aim.remote) == (f"{out}/aim", "e", False)
    mlflow = settings.mlflow_settings(config, out)
    assert mlflow.tracking_uri == f"sqlite:///{out}/mlflow/mlflow.db" and mlflow.experiment == "e"
    assert settings.export_dir(config, out) == out


def test_remote_aim_server_url(tmp_path):
    from tuning_core_trackers import settings

    config = _validate(
        tmp_path, "--trackers", "aim", "--aim_remote_server_ip", "127.0.0.1", "--aim_remote_server_port", "53800"
    )
    assert settings.aim_settings(config, "o").repo == "aim://127.0.0.1:53800"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--exp_metadata", "{gpu: A100}"], "--exp_metadata must be a JSON object"),
        (["--exp_metadata", '["a", "b"]'], "--exp_metadata must be a JSON object (key/value pairs), not list"),
        (["--trackers", "aim", "--aim_remote_server_ip", "h"], "--aim_remote_server_port is missing"),
        (["--trackers", "aim", "--aim_remote_server_port", "80"], "--aim_remote_server_ip is missing"),
        (
            ["--trackers", "aim", "--aim_remote_server_ip", "h", "--aim_remote_server_port", "70000"],
            "--aim_remote_server_port must be a TCP port",
        ),
        (
            ["--trackers", "aim", "--aim_repo", "r", "--aim_remote_server_ip", "h", "--aim_remote_server_port", "80"],
            "either --aim_repo",
        ),
    ],
)
def test_bad_tracker_flags_are_config_errors_naming_the_flag(tmp_path, flags, expected):
    assert expected in _error(tmp_path, *flags)


def test_paths_that_are_files_are_config_errors(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "--aim_repo must be a folder" in _error(tmp_path, "--trackers", "aim", "--aim_repo", str(a_file))
    assert "--mlflow_tracking_uri" in _error(tmp_path, "--trackers", "mlflow", "--mlflow_tracking_uri", str(a_file))
    assert "--run_uri_export_path must be a folder" in _error(tmp_path, "--run_uri_export_path", str(a_file))


@pytest.mark.parametrize(
    "tracker, hidden, extra",
    [
        ("aim", "aim", "tuning-core-trackers[aim]"),
        ("mlflow", "mlflow", "tuning-core-trackers[mlflow]"),
        ("mlflow", "sqlalchemy", "tuning-core-trackers[mlflow]"),  # the default SQLite store needs it
        ("clearml", "clearml", "tuning-core-trackers[clearml]"),
    ],
)
def test_missing_library_names_the_extra(tmp_path, monkeypatch, tracker, hidden, extra):
    monkeypatch.setitem(sys.modules, hidden, None)  # what an environment without the library looks like
    message = _error(tmp_path, "--trackers", tracker)
    assert f"--trackers {tracker} needs {hidden}" in message and f"pip install '{extra}'" in message


def test_unknown_tracker_is_refused_by_the_core(tmp_path):
    assert "unknown tracker 'wandb'" in _error(tmp_path, "--trackers", "wandb")


def test_only_the_main_process_records(tmp_path):
    from tuning_core.plugins import get_plugin_manager

    config = _validate(tmp_path, "--trackers", "aim", "mlflow")
    pm = get_plugin_manager()
    worker = RunContext(output_dir=str(tmp_path / "out"), is_main_process=False)

    def names(run):
        return [
            type(cb).__name__ for cbs in pm.hook.tuning_core_trainer_callbacks(config=config, run=run) for cb in cbs
        ]

    assert "AimTracker" not in names(worker) and "MlflowTracker" not in names(worker)
    assert {"AimTracker", "MlflowTracker"} <= set(names(RunContext(output_dir=str(tmp_path / "out"))))
    assert not (tmp_path / "out").exists()  # building callbacks opens nothing; runs open with the trainer


def test_tracker_flags_without_the_tracker_are_noted(tmp_path):
    from tuning_core.plugins import get_plugin_manager

    config = _validate(tmp_path, "--aim_repo", "r", "--mlflow_experiment", "m")
    run = RunContext(output_dir=str(tmp_path / "out"))
    get_plugin_manager().hook.tuning_core_trainer_callbacks(config=config, run=run)
    assert "--aim_repo ignored: aim is not in --trackers" in run.notes
    assert "--mlflow_experiment ignored: mlflow is not in --trackers" in run.notes


def test_entry_point_module_imports_no_heavy_library():
    code = (
        "import sys, tuning_core_trackers.plugin; "
        "print([m for m in ('torch', 'transformers', 'aim', 'mlflow', 'clearml') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_aim_url_is_a_repository_url(tmp_path):
    from tuning_core_trackers import settings

    remote = settings.aim_settings(_validate(tmp_path, "--trackers", "aim", "--aim_url", "aim://10.0.0.5:53800"), "o")
    assert (remote.repo, remote.remote) == ("aim://10.0.0.5:53800", True)
    local = settings.aim_settings(_validate(tmp_path, "--trackers", "aim", "--aim_url", str(tmp_path / "r")), "o")
    assert (local.repo, local.remote) == (str(tmp_path / "r"), False)


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--aim_url", "aim://host"], "expected aim://HOST:PORT"),
        (["--aim_url", "http://host:80"], "expected aim://HOST:PORT or a local folder"),
        (["--aim_url", "aim://h:1", "--aim_repo", "r"], "give one of --aim_url"),
        (["--aim_url", "aim://h:1", "--aim_remote_server_ip", "h", "--aim_remote_server_port", "1"], "give one of"),
    ],
)
def test_bad_aim_url(tmp_path, flags, expected):
    assert expected in _error(tmp_path, "--trackers", "aim", *flags)


def test_clearml_settings_and_server_check(tmp_path, monkeypatch):
    from tuning_core_trackers import settings

    monkeypatch.setenv("HOME", str(tmp_path))  # no clearml.conf
    for var in ("CLEARML_API_HOST", "CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE", "CLEARML_OFFLINE_MODE"):
        monkeypatch.delenv(var, raising=False)
    assert "no ClearML server is configured" in _error(tmp_path, "--trackers", "clearml")
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    config = _validate(tmp_path, "--trackers", "clearml", "--experiment", "e")
    assert settings.clearml_settings(config, str(tmp_path / "run-7")) == settings.ClearmlSettings("e", "run-7", True)
    config = _validate(tmp_path, "--trackers", "clearml", "--clearml_project", "p", "--clearml_task", "t")
    assert settings.clearml_settings(config, "o") == settings.ClearmlSettings("p", "t", True)
