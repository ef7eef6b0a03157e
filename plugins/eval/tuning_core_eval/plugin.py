"""Entry point: the `eval` command and `train --eval_tasks`. Import-light: lm-eval loads only when used."""

from __future__ import annotations

from tuning_core.plugin_api import CliCommand, hookimpl
from tuning_core_eval.arguments import EvalTaskArguments


@hookimpl
def tuning_core_cli_commands():
    def add_arguments(parser):
        from tuning_core_eval import command

        command.add_arguments(parser)

    def run(args):
        from tuning_core_eval import command

        return command.run(args)

    return [
        CliCommand(
            name="eval",
            add_arguments=add_arguments,
            run=run,
            help="Score a tuned model (and its base) on lm-eval tasks or a labelled JSONL test set.",
        )
    ]


@hookimpl
def tuning_core_config_classes():
    return [EvalTaskArguments]


@hookimpl
def tuning_core_validate_config(config):
    from tuning_core_eval.callback import validate

    validate(config)


# First in the callback list: the scores join the trainer's last log call before the trackers see it.
@hookimpl(tryfirst=True)
def tuning_core_trainer_callbacks(config, run):
    if not config.eval_tasks:
        return []
    from tuning_core_eval.callback import EvalTasksCallback

    return [EvalTasksCallback(config, run.output_dir, run.is_main_process)]
