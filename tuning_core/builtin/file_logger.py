"""Built-in tracker: training_logs.jsonl in fms-hf-tuning's line format, written by rank 0 only."""

from __future__ import annotations

import datetime
import json
import os

from tuning_core.errors import ConfigError
from tuning_core.plugin_api import hookimpl
from tuning_core.plugin_hints import TRACKER_EXTRAS, TRACKER_OWNERS, install_hint

LOG_FILE = "training_logs.jsonl"
_NAMES = {"loss": "training_loss", "eval_loss": "validation_loss"}


def make_file_logger(output_dir: str):
    from transformers import TrainerCallback

    class FileLoggingCallback(TrainerCallback):
        """Append one JSON line per logged loss; flushed at once so a crash loses nothing logged."""

        def __init__(self):
            self.path = os.path.join(output_dir, LOG_FILE)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            lines = []
            for key, name in _NAMES.items():
                if key in logs:
                    lines.append(json.dumps({"name": name, "data": {
                        "epoch": round(state.epoch or 0.0, 4),
                        "step": state.global_step,
                        "timestamp": datetime.datetime.now().isoformat(),
                        "value": logs[key],
                    }}))
            if lines:
                os.makedirs(output_dir, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")

    return FileLoggingCallback()


@hookimpl
def tuning_core_validate_config(config):
    from tuning_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    for name in config.trackers:
        if name == "file_logger":
            continue
        owner = TRACKER_OWNERS.get(name)
        if owner is None:
            raise ConfigError(f"--trackers: unknown tracker '{name}'; choose from file_logger, aim, mlflow")
        if not pm.has_plugin(owner):
            raise ConfigError(f"--trackers {name} needs the {owner} plugin: "
                              f"{install_hint(owner, TRACKER_EXTRAS[name])}")


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    # Always on, whatever else is tracked: `tuning-core report` and resumes read this file.
    return [make_file_logger(run.output_dir)]
