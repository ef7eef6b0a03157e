"""Configuration: typed dataclasses -> flags and config keys -> one Config object."""

from tuning_core.config.config import Config
from tuning_core.config.fields import FieldSpec, specs_for
from tuning_core.config.loading import add_arguments, config_from_args, load_train_config, make_config

__all__ = [
    "Config",
    "FieldSpec",
    "add_arguments",
    "config_from_args",
    "load_train_config",
    "make_config",
    "specs_for",
]
