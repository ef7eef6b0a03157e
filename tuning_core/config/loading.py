"""Build a Config from the command line, a config file, or keyword values."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from tuning_core.config import parser as flag_parser
from tuning_core.config.config import Config
from tuning_core.config.fields import FieldSpec, specs_for
from tuning_core.errors import ConfigError


def registered_classes(pm=None) -> list[type]:
    """Every config dataclass contributed through `tuning_core_config_classes`, built-ins first."""
    from tuning_core.plugins import get_plugin_manager

    pm = pm or get_plugin_manager()
    classes: list[type] = []
    for result in reversed(pm.hook.tuning_core_config_classes()):
        for cls in result or ():
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise TypeError(f"tuning_core_config_classes returned {cls!r}, which is not a dataclass")
            if cls not in classes:
                classes.append(cls)
    return classes


def class_specs(classes: list[type]) -> list[FieldSpec]:
    specs: list[FieldSpec] = []
    for cls in classes:
        specs.extend(specs_for(cls))
    flag_parser.check_unique(specs)
    return specs


def _sections(classes: list[type], values: dict[str, Any]) -> list[Any]:
    out = []
    for cls in classes:
        kwargs = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values}
        try:
            out.append(cls(**kwargs))
        except (ValueError, TypeError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"invalid settings for {cls.__name__}: {e}") from None
    return out


def load_train_config(argv: list[str], pm=None, prog: str = "tuning-core train") -> Config:
    """Parse `tuning-core train` arguments into a Config with its trl.SFTConfig."""
    from tuning_core.config.training_args import build_training_args, training_specs
    from tuning_core.optional_backends import hide_unused
    from tuning_core.plugins import get_plugin_manager

    classes = registered_classes(pm)
    specs = class_specs(classes)
    # Before anything imports transformers (even for its TrainingArguments table): peft, behind it, imports
    # every back-end it finds.
    hide_unused(pm or get_plugin_manager(), flag_parser.parse_values(argv, specs, prog=prog, known_only=True))
    owned = {s.name for s in specs} | {a for s in specs for a in s.aliases}
    tspecs = training_specs(owned)
    titles = {cls: _title(cls) for cls in classes}
    given: dict[str, str] = {}
    values = flag_parser.parse_values(
        argv,
        specs + tspecs,
        prog=prog,
        group_titles=titles,
        given=given,
        description="Tune a causal language model. Flags follow fms-hf-tuning.",
    )
    sections = _sections(classes, values)
    tvalues = {s.name: values[s.name] for s in tspecs}
    config = Config(sections)
    object.__setattr__(config, "given", given)
    config.training_args = build_training_args(
        tvalues, torch_dtype=getattr(config, "torch_dtype", "auto") if config.has("torch_dtype") else "auto"
    )
    return config


def _title(cls: type) -> str:
    module = cls.__module__
    where = "core" if module.startswith("tuning_core.") else module.split(".")[0]
    return f"{cls.__name__} ({where})"


def add_arguments(parser: argparse.ArgumentParser, classes: list[type]) -> None:
    """Add the flags of ``classes`` to an argparse parser (for subcommands that reuse core settings)."""
    flag_parser.add_arguments(parser, class_specs(classes), {c: _title(c) for c in classes})


def config_from_args(namespace: argparse.Namespace, classes: list[type]) -> Config:
    """A Config from a namespace filled by a parser that `add_arguments` prepared."""
    specs = class_specs(classes)
    values = {s.name: s.default for s in specs}
    given = vars(namespace)
    for spec in specs:
        if spec.name in given:
            raw = given[spec.name]
            if spec.is_list and raw == [] and spec.const is not None:
                raw = spec.const
            values[spec.name] = spec.convert(raw, f"--{spec.name}")
    missing = [s.name for s in specs if values[s.name] is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required flag --{missing[0]}")
    return Config(_sections(classes, values))


def make_config(pm=None, **values: Any) -> Config:
    """A Config of every registered section with defaults, overridden by ``values`` (no training args)."""
    classes = registered_classes(pm)
    specs = {s.name: s for s in class_specs(classes)}
    merged = {name: s.default for name, s in specs.items()}
    for key, value in values.items():
        if key not in specs:
            raise ConfigError(flag_parser.unknown_key_error(key, specs, "make_config").args[0])
        merged[key] = specs[key].convert(value, key)
    return Config(_sections(classes, merged))
