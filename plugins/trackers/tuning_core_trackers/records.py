"""What a tracker records, shaped independently of any tracker library."""

from __future__ import annotations

import json
import os
import re


def split_logs(logs: dict) -> tuple[dict[str, float], float | None]:
    """Trainer `logs` -> (numeric metrics, epoch). Strings and flags are not metrics."""
    metrics = {}
    for key, value in (logs or {}).items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metrics[key] = float(value)
    epoch = logs.get("epoch") if logs else None
    return metrics, (float(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else None)


def plain_json(values: dict) -> dict:
    """A JSON round trip: str-based enums become plain str, anything odd becomes its str().
    Aim stores only exact builtin types."""
    return json.loads(json.dumps(values, default=str))


def as_text(value) -> str:
    """A parameter value as text: scalars as Python prints them, containers as JSON."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


_MLFLOW_KEY_BAD = re.compile(r"[^\w\-./ :]")


def mlflow_key(key: str) -> str:
    """MLflow rejects keys outside [word chars - . / space :]; user metadata may have any."""
    return _MLFLOW_KEY_BAD.sub("_", str(key))


def write_run_info(directory: str, tracker: str, info: dict) -> str:
    """Write <directory>/<tracker>_tracker.json so other tools can find the run."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{tracker}_tracker.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return path
