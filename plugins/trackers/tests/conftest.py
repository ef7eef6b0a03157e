"""Fixtures for the tracker plugin: only this plugin loaded, and tiny end-to-end training runs."""

import json
import os

import pytest

from tuning_core.testing.training import train_argv, training_logs

# MLflow would otherwise try to reach its telemetry service from every run.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def _trackers_plugin_only(plugins_enabled):
    plugins_enabled("trackers")


@pytest.fixture(scope="session")
def small_validation(tmp_path_factory, twitter_data):
    """The first 8 rows of the bundled data, so evaluation stays fast."""
    path = tmp_path_factory.mktemp("val") / "val.jsonl"
    with open(twitter_data, encoding="utf-8") as src:
        path.write_text("".join(src.readlines()[:8]), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def train_args(tiny_llama, twitter_data):
    """argv for a 4-step LoRA run on the tiny model; add --output_dir and tracker flags."""

    def build(output_dir, *extra):
        return train_argv(
            tiny_llama, twitter_data, output_dir, "--peft_method", "lora", *extra, steps=4, batch=4, lr="1e-3"
        )

    return build


def read_file_log(output_dir) -> dict[str, list[tuple[int, float]]]:
    """training_logs.jsonl as {name: [(step, value)]}."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in training_logs(output_dir):
        series.setdefault(row["name"], []).append((row["data"]["step"], row["data"]["value"]))
    return series


@pytest.fixture(scope="session")
def file_log():
    return read_file_log


def read_aim_run(info_path):
    """Open the run named by aim_tracker.json through Aim's own Repo API.

    A closed run is visible to `aim.Repo` only once indexed (what `aim up` does in the
    background), so index it here first.
    """
    from aim import Repo
    from aim.sdk.index_manager import RepoIndexManager

    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    repo = Repo(info["repo"])
    RepoIndexManager.get_index_manager(repo).index(info["run_hash"])
    run = repo.get_run(info["run_hash"])
    assert run is not None, f"Aim run {info['run_hash']} not found in {info['repo']}"
    series = {}
    for metric in run.metrics():
        steps, (values, _epochs, _timestamps) = metric.data.items_list()
        series[(metric.name, metric.context.to_dict().get("subset"))] = list(zip(steps, values, strict=False))
    return info, run, series


def read_mlflow_run(info_path):
    """The run named by mlflow_tracker.json, through MlflowClient: (info, run, {metric: [(step, value)]})."""
    from mlflow.tracking import MlflowClient

    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    client = MlflowClient(tracking_uri=info["tracking_uri"])
    run = client.get_run(info["run_id"])
    series = {
        key: [
            (m.step, m.value)
            for m in sorted(client.get_metric_history(info["run_id"], key), key=lambda m: (m.step, m.timestamp))
        ]
        for key in run.data.metrics
    }
    return info, run, series, client


@pytest.fixture(scope="session")
def aim_reader():
    return read_aim_run


@pytest.fixture(scope="session")
def mlflow_reader():
    return read_mlflow_run
