"""Built-in plugin: the `infer`, `merge` and `report` subcommands (heavy imports happen inside `run`)."""

from __future__ import annotations

from tuning_core.plugin_api import CliCommand, hookimpl


def _command(name: str, module: str, help_text: str) -> CliCommand:
    def add_arguments(parser):
        import importlib

        importlib.import_module(module).add_arguments(parser)

    def run(args):
        import importlib

        return importlib.import_module(module).run(args)

    return CliCommand(name=name, help=help_text, add_arguments=add_arguments, run=run)


@hookimpl
def tuning_core_cli_commands():
    return [
        _command(
            "infer",
            "tuning_core.infer",
            "Generate text with a tuned model (LoRA / prompt-tuning adapter or full model) into a JSON file.",
        ),
        _command(
            "merge",
            "tuning_core.merge",
            "Merge a LoRA adapter into its base model and save a standalone model with its tokenizer.",
        ),
        _command(
            "export",
            "tuning_core.export",
            "Write a LoRA adapter in the layout vLLM serves (--vllm): new token rows in their own file.",
        ),
        _command(
            "report",
            "tuning_core.report",
            "Plot the training and validation loss of a run (PNG) and print a short summary.",
        ),
    ]
