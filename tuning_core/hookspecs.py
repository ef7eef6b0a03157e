"""Hook specifications: the only way a plugin touches training.

Every hook is documented for plugin authors in docs/plugins.md. Providers
(model loading, PEFT, collator, sampler) are ``firstresult``: the first plugin
that returns something other than ``None`` wins and built-ins run last.
Everything else is collected from every plugin.
"""

import pluggy

PROJECT = "tuning_core"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def tuning_core_config_classes():
    """Return a list of dataclasses whose fields become CLI flags and config keys."""


@hookspec
def tuning_core_validate_config(config):
    """Check the resolved config before anything heavy loads; raise ConfigError on a problem."""


@hookspec(firstresult=True)
def tuning_core_load_model(config, purpose):
    """Return a LoadedModel(model, tokenizer) for purpose "train" or "infer", or None to pass."""


@hookspec(firstresult=True)
def tuning_core_augment_model(config, model, tokenizer):
    """Return the model wrapped for parameter-efficient tuning (or as is), or None to pass."""


@hookspec
def tuning_core_patch_model(config, model):
    """Replace modules or functions of the model; return a PatchReport of what changed, or None."""


@hookspec(firstresult=True)
def tuning_core_data_collator(config, tokenizer, model):
    """Return the data collator for training batches, or None to pass."""


@hookspec(firstresult=True)
def tuning_core_train_sampler(config, dataset, training_args):
    """Return a SamplerSpec for the training dataloader, or None to pass."""


@hookspec
def tuning_core_trainer_callbacks(config, run):
    """Return a list of transformers TrainerCallback objects to add to the trainer."""


@hookspec
def tuning_core_plugin_details():
    """Return a JSON-serialisable dict of what the plugin supports, shown by `tuning-core plugins` (no torch)."""


@hookspec
def tuning_core_cli_commands():
    """Return a list of CliCommand objects that become `tuning-core` subcommands."""


@hookspec
def tuning_core_controller_components():
    """Return a ControllerComponents of extra trainer-controller metric handlers and operations."""


@hookspec
def tuning_core_optional_backends():
    """Return {import name: [config keys]}: libraries to hide from a `tuning-core` run that sets none of the keys."""


@hookspec
def tuning_core_data_handlers():
    """Return a dict of name -> DataHandler that data configs can name in their data_handlers."""
