"""Hooks of the example plugin. No torch/transformers at import time: `tuning-core plugins` stays fast."""

from dataclasses import dataclass, field

from tuning_core.plugin_api import ConfigError, DataHandler, hookimpl


@dataclass
class StepCounterArguments:
    step_counter_file: str = field(
        default="step_counter.json", metadata={"help": "File in output_dir that receives the step count."}
    )


@hookimpl
def tuning_core_config_classes():
    return [StepCounterArguments]


@hookimpl
def tuning_core_validate_config(config):
    if "/" in config.step_counter_file:
        raise ConfigError("--step_counter_file must be a file name, not a path")


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    from tuning_core_step_counter.callback import StepCounter

    if not run.is_main_process:
        return []
    return [StepCounter(run.output_dir, config.step_counter_file)]


@hookimpl
def tuning_core_data_handlers():
    from tuning_core_step_counter.handlers import tag_output

    return {"tag_output": DataHandler(tag_output, kind="map", description="append a tag to a text column")}
