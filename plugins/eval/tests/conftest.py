"""Fixtures for the eval plugin: only this plugin loaded, the bundled tasks, and one tiny LoRA run."""

import os

import pytest
from eval_helpers import TASKS, cli, train_argv

from tuning_core.plugin_api import hookimpl

TRAIN_STEPS = "20"


@pytest.fixture(autouse=True)
def _eval_plugin_only(plugins_enabled):
    plugins_enabled("eval")


@pytest.fixture(scope="session")
def tasks_dir():
    return TASKS


@pytest.fixture(scope="session")
def run_cli():
    return cli


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory, tiny_llama, twitter_data):
    """A short LoRA run on the bundled data that scores the local tasks when it ends (train --eval_tasks)."""
    from tuning_core.pipeline import run_training
    from tuning_core.plugins import get_plugin_manager, reset_plugin_manager

    before = os.environ.get("TUNING_CORE_PLUGINS")
    os.environ["TUNING_CORE_PLUGINS"] = "eval"
    reset_plugin_manager()
    recorder = LogRecorder()
    get_plugin_manager().register(recorder, name="log_recorder")
    out = tmp_path_factory.mktemp("lora_run")
    try:
        result = run_training(
            train_argv(
                tiny_llama,
                twitter_data,
                out,
                "--peft_method",
                "lora",
                "--max_steps",
                TRAIN_STEPS,
                "--learning_rate",
                "2e-2",
                "--save_model_dir",
                str(out / "final"),
                "--eval_tasks",
                "twitter_complaints_label,twitter_complaints_choice",
                "--eval_tasks_limit",
                "10",
            )
        )
    finally:
        if before is None:
            os.environ.pop("TUNING_CORE_PLUGINS", None)
        else:
            os.environ["TUNING_CORE_PLUGINS"] = before
        reset_plugin_manager()
    result.recorded_logs = recorder.logs
    return out, result


class LogRecorder:
    """A stand-in tracker plugin: records every `logs` dict its callback's on_log receives."""

    def __init__(self):
        self.logs = []

    @hookimpl
    def tuning_core_trainer_callbacks(self, config, run):
        from transformers import TrainerCallback

        recorded = self.logs

        class Recorder(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                recorded.append(dict(logs or {}))

        return [Recorder()]
