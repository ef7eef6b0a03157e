"""Everything about a training run that can be checked before the model loads, checked before it loads.

Each failure is a ConfigError (one line, exit code 2): a run never trains for hours and
then loses its result to an unwritable save_model_dir or a missing validation file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from tuning_core.errors import ConfigError

log = logging.getLogger("tuning_core")

# Settings that only one peft_method reads, by the config section that owns them.
_METHOD_SECTIONS = {
    "LoraArguments": ("lora", "alora"),  # aLoRA is LoRA with an invocation sequence: same settings
    "LoraOptions": ("lora", "alora"),
    "PromptTuningArguments": ("pt",),
}


def preflight(config) -> None:
    check_output_dir(config.training_args.output_dir, "--output_dir", create=True)
    if config.has("save_model_dir") and config.save_model_dir:
        check_output_dir(config.save_model_dir, "--save_model_dir", create=False)
    check_data_files(config)
    check_unused_settings(config)


def check_output_dir(path: str, flag: str, create: bool) -> None:
    """``path`` is (or can become) a directory this process can write into."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a directory")
    if create:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{flag} {path}: cannot create the directory ({e.strerror or e})") from None
        probe_dir = target
    else:  # created by the final save: the nearest existing folder above it must take a new entry
        probe_dir = target if target.is_dir() else next((p for p in target.parents if p.exists()), Path("."))
        if not probe_dir.is_dir():
            raise ConfigError(f"{flag} {path}: {probe_dir} is not a directory")
    try:  # os.access says yes to root on a read-only mount: really write
        fd, name = tempfile.mkstemp(prefix=".tuning_core-write-test-", dir=probe_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: {probe_dir} is not writable ({e.strerror or e})") from None


def check_data_files(config) -> None:
    from tuning_core.data.readers import resolve_files

    for flag in ("training_data_path", "validation_data_path"):
        spec = getattr(config, flag, None) if config.has(flag) else None
        if spec:
            resolve_files(str(spec), f"--{flag}")  # a DataError, as the data pipeline would raise later


def check_unused_settings(config) -> None:
    """A setting of one peft_method given with another does nothing: a flag is an error, a config key a warning.

    Config files shared between runs (fms-hf-tuning's examples) often carry LoRA keys for every
    method, so only a flag typed for this run can only be a mistake.
    """
    method = str(getattr(config, "peft_method", "none")).lower() if config.has("peft_method") else None
    if method is None:
        return
    owners = {name: type(section).__name__ for section in config._sections.values() for name in _field_names(section)}
    for name, where in config.given.items():
        methods = _METHOD_SECTIONS.get(owners.get(name, ""), ())
        if not methods or method in methods:
            continue
        wanted = methods[0]
        text = f"{where}: '{name}' is a --peft_method {wanted} setting and does nothing with --peft_method {method}"
        if where.startswith("--"):
            raise ConfigError(f"{text}; add --peft_method {wanted} or drop {where}")
        log.warning("%s; ignored", text)


def _field_names(section) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(section)]
