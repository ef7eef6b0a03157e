"""transformers.TrainingArguments as flags, and the trl.SFTConfig we hand the trainer.

Only TrainingArguments' own fields become flags: SFTConfig's extras
(padding_free, packing, max_length...) are ours to set, since their names
clash with plugin flags and their defaults suit TRL's data path, not ours.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tuning_core.config.fields import FieldSpec, specs_for
from tuning_core.config.rules import TRAINING_RULES
from tuning_core.config.spec_cache import cached_specs
from tuning_core.errors import ConfigError

# Where fms-hf-tuning (or this machine) needs another default than transformers.
TRAINING_DEFAULTS: dict[str, Any] = {
    "output_dir": None,
    "save_strategy": "epoch",  # fms-hf-tuning's default
    "logging_steps": 1,
    "logging_strategy": "steps",
    "report_to": "none",  # trackers are chosen with --trackers
    "gradient_checkpointing": False,  # TRL turns it on; it costs ~15 % per step, so only when asked
    "bf16": None,  # None = pick for the machine (see mixed_precision)
    "fp16": None,
    "resume_from_checkpoint": None,  # None: resume from output_dir's latest checkpoint if any; False: start over
    "remove_unused_columns": False,  # our datasets hold only what collators need
}

ALIASES = {"eval_strategy": ("evaluation_strategy",)}  # the pre-v5 name fms-hf-tuning users still pass


class TrainingArguments:
    """transformers.TrainingArguments, as the owner of flags read back from the spec cache."""


TrainingArguments.__module__ = "transformers"


def training_specs(owned_elsewhere: set[str]) -> list[FieldSpec]:
    specs = cached_specs("training_arguments", "transformers", TrainingArguments, _all_training_specs)
    specs = [s for s in specs if s.name not in owned_elsewhere]
    for spec in specs:
        if spec.name in TRAINING_DEFAULTS:
            spec.default = TRAINING_DEFAULTS[spec.name]
        if spec.name in ("bf16", "fp16"):
            spec.optional = True
        spec.aliases = ALIASES.get(spec.name, ())
        spec.rule = TRAINING_RULES.get(spec.name)
    return specs


def _all_training_specs() -> list[FieldSpec]:
    import transformers

    # Our defaults and owned_elsewhere are applied after the cache: the table holds transformers' facts only.
    return specs_for(transformers.TrainingArguments, lenient=True)


def mixed_precision(values: dict[str, Any], torch_dtype: str) -> tuple[bool, bool]:
    """(bf16, fp16): what the user asked, else bf16/fp16 autocast on GPUs and full precision on CPU."""
    bf16, fp16 = values.get("bf16"), values.get("fp16")
    if bf16 is not None or fp16 is not None:
        return bool(bf16), bool(fp16)
    import torch

    if not torch.cuda.is_available() or torch_dtype == "float32":
        return False, False
    if torch.cuda.is_bf16_supported():
        return True, False
    return False, True


# fms-hf-tuning's names for settings that newer transformers renamed: (old, new). The old flag stays ours.
RENAMED = (
    ("gradient_checkpointing", "activation_checkpointing"),
    ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
)


def _rename_deprecated(kwargs: dict[str, Any], fields: set[str]) -> None:
    """Hand transformers the new name where it has one, so it does not warn about the old."""
    for old, new in RENAMED:
        if new in fields and old in kwargs:
            value = kwargs.pop(old)
            if kwargs.get(new) is None:
                kwargs[new] = value
            kwargs[old] = None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def build_training_args(values: dict[str, Any], torch_dtype: str):
    """The trl.SFTConfig for this run, from the TrainingArguments values the user resolved."""
    import trl

    if not values.get("output_dir"):
        raise ConfigError("--output_dir is required: the directory for checkpoints and training_logs.jsonl")
    kwargs = dict(values)
    kwargs["bf16"], kwargs["fp16"] = mixed_precision(values, torch_dtype)
    _rename_deprecated(kwargs, {f.name for f in dataclasses.fields(trl.SFTConfig)})
    if kwargs.get("dataloader_pin_memory", True) and not _cuda_available():
        kwargs["dataloader_pin_memory"] = False  # pinning needs a GPU; torch warns on every dataloader otherwise
    # Our data pipeline tokenizes, masks and truncates; TRL must not redo it.
    kwargs.update(
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        packing=False,
        padding_free=False,
        completion_only_loss=None,
    )
    try:
        return trl.SFTConfig(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"invalid training arguments: {e}") from None
