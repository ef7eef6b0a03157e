"""--trackers clearml, offline (CLEARML_OFFLINE_MODE=1): a real run, read back from ClearML's session folder.

ClearML's offline session is what it would send to a server: task.json (name, project, parameters) and
metrics.jsonl (every reported scalar). The reference is the core's training_logs.jsonl.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _session_events(folder) -> list[dict]:
    events = []
    with open(os.path.join(folder, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:  # one JSON list of events per flush
            if line.strip():
                events.extend(json.loads(line))
    return events


def test_offline_clearml_task_holds_losses_config_and_metadata(tmp_path, train_args, file_log):
    out = tmp_path / "run-c"
    env = {
        **os.environ,
        "CLEARML_OFFLINE_MODE": "1",
        "CLEARML_CACHE_DIR": str(tmp_path / "clearml-cache"),
        "HOME": str(tmp_path),
        "TUNING_CORE_PLUGINS": "trackers",
    }
    # A subprocess: ClearML keeps process-wide state (the current task, its reporting threads).
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_core",
            "train",
            *train_args(
                out,
                "--trackers",
                "file_logger",
                "clearml",
                "--clearml_project",
                "proj-x",
                "--clearml_task",
                "task-y",
                "--exp_metadata",
                '{"gpu": "none"}',
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "clearml_tracker.json").read_text())
    assert info["project"] == "proj-x" and info["task"] == "task-y" and info["task_id"].startswith("offline-")
    folder = info["offline_folder"]
    assert folder.startswith(str(tmp_path / "clearml-cache"))

    task = json.loads(open(os.path.join(folder, "task.json"), encoding="utf-8").read())
    assert (task["project_name"], task["name"], task["id"]) == ("proj-x", "task-y", info["task_id"])
    hparams = task["hyperparams"]["hparams"]
    assert hparams["learning_rate"]["value"] == "0.001" and hparams["max_steps"]["value"] == "4"
    assert hparams["clearml_project"]["value"] == "proj-x"
    assert task["hyperparams"]["exp_metadata"]["gpu"]["value"] == "none"

    events = _session_events(folder)
    losses = sorted((e["iter"], e["value"]) for e in events if (e["metric"], e["variant"]) == ("loss", "train"))
    expected = file_log(out)["training_loss"]
    assert [s for s, _ in losses] == [s for s, _ in expected] == [1, 2, 3, 4]
    assert [v for _, v in losses] == pytest.approx([v for _, v in expected])
    timings = {e["variant"]: e["value"] for e in events if e["metric"] == "timings"}
    assert timings["model_load_seconds"] > 0 and timings["data_preprocessing_seconds"] > 0
    assert "clearml (offline): project 'proj-x', task 'task-y'" in proc.stdout + proc.stderr
