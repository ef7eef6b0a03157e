"""Built-in tracker: training_logs.jsonl in fms-hf-tuning's line format, written by rank 0 only."""

from __future__ import annotations

import datetime
import json
import os

from tuning_core.errors import ConfigError
from tuning_core.plugin_api import hookimpl
from tuning_core.plugin_hints import TRACKER_EXTRAS, TRACKER_OWNERS, install_hint

LOG_FILE = "training_logs.jsonl"
BUILTIN_TRACKERS = ("file_logger", "hf_resource_scanner")
_NAMES = {"loss": "training_loss", "eval_loss": "validation_loss"}


def make_file_logger(output_dir: str, filename: str = LOG_FILE):
    from transformers import TrainerCallback

    class FileLoggingCallback(TrainerCallback):
        """Append one JSON line per logged loss; flushed at once so a crash loses nothing logged."""

        def __init__(self):
            self.path = os.path.join(output_dir, filename)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            lines = []
            for key, name in _NAMES.items():
                if key in logs:
                    lines.append(
                        json.dumps(
                            {
                                "name": name,
                                "data": {
                                    "epoch": round(state.epoch or 0.0, 4),
                                    "step": state.global_step,
                                    "timestamp": datetime.datetime.now().isoformat(),
                                    "value": logs[key],
                                },
                            }
                        )
                    )
            if lines:
                os.makedirs(output_dir, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")

    return FileLoggingCallback()


@hookimpl
def tuning_core_validate_config(config):
    from tuning_core.plugins import get_plugin_manager

    check_log_filename("training_logs_filename", config.training_logs_filename)
    if "hf_resource_scanner" in config.trackers:
        name = config.scanner_output_filename
        if not name or os.path.isdir(scanner_path(getattr(config, "output_dir", None) or ".", name)):
            raise ConfigError(f"--scanner_output_filename must name a file, not {name!r}")
    pm = get_plugin_manager()
    for name in config.trackers:
        if name in BUILTIN_TRACKERS:
            continue
        owner = TRACKER_OWNERS.get(name)
        if owner is None:
            known = ", ".join([*BUILTIN_TRACKERS, *TRACKER_OWNERS])
            raise ConfigError(f"--trackers: unknown tracker '{name}'; choose from {known}")
        if not pm.has_plugin(owner):
            raise ConfigError(
                f"--trackers {name} needs the {owner} plugin: {install_hint(owner, TRACKER_EXTRAS[name])}"
            )


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    # Always on, whatever else is tracked: `tuning-core report` and resumes read this file.
    callbacks = [make_file_logger(run.output_dir, config.training_logs_filename)]
    if "hf_resource_scanner" in config.trackers and run.is_main_process:
        from tuning_core.builtin.resource_scanner import ResourceScanner

        path = scanner_path(run.output_dir, config.scanner_output_filename)
        callbacks.append(ResourceScanner(path, run.timings))
        run.notes.append(f"hf_resource_scanner: peak memory and timings -> {path}")
    return callbacks


def check_log_filename(flag: str, value: str) -> None:
    if not value or value != os.path.basename(value) or value in (".", ".."):
        raise ConfigError(f"--{flag} must be a file name inside --output_dir, not {value!r}")


def scanner_path(output_dir: str, filename: str) -> str:
    """--scanner_output_filename: inside --output_dir unless absolute."""
    return filename if os.path.isabs(filename) else os.path.join(output_dir, filename)
