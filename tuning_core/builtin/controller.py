"""Built-in plugin: the trainer controller (--trainer_controller_config_file)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuning_core.plugin_api import hookimpl


@dataclass
class ControllerArguments:
    trainer_controller_config_file: str | None = field(
        default=None,
        metadata={
            "help": "YAML file of trainer controllers: rules over training metrics that stop "
            "training, save a checkpoint, evaluate or log (fms-hf-tuning format; see "
            "docs/controller.md)."
        },
    )


def _plan(config):
    from tuning_core.controller import gather_components, load_plan

    return load_plan(config.trainer_controller_config_file, gather_components())


@hookimpl
def tuning_core_config_classes():
    return [ControllerArguments]


@hookimpl
def tuning_core_validate_config(config):
    # Parse the file and compile every rule now, so mistakes stop the run before any model loads.
    if config.trainer_controller_config_file:
        plan = _plan(config)
        if config.training_args is not None:
            plan.check_training_args(config.training_args)


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    if not config.trainer_controller_config_file:
        return []
    from tuning_core.controller.callback import TrainerControllerCallback

    plan = _plan(config)
    if run is not None:
        run.notes.append(
            f"trainer controller {config.trainer_controller_config_file}: "
            + ", ".join(c.name for c in plan.controllers)
        )
    return [TrainerControllerCallback(plan)]


@hookimpl
def tuning_core_controller_components():
    from tuning_core.controller import builtin_components

    return builtin_components()
