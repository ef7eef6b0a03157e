"""Numeric rules for config fields, declared next to the field (``metadata={"rule": ...}``).

Checked when a value is parsed (flag or config file), so a bad number stops the run
before anything loads. TrainingArguments is not ours: its rules are in
``TRAINING_RULES`` and attached to its flag specs in config/training_args.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """``low``/``high`` bounds (inclusive unless ``*_open``), finite numbers only, plus ``special`` values
    accepted as they are (e.g. max_steps -1, meaning 'use num_train_epochs')."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    special: tuple = ()
    meaning: str = ""

    def describe(self) -> str:
        if self.meaning:
            return self.meaning
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = "a finite number " + " and ".join(parts) if parts else "a finite number"
        return text + "".join(f", or {s}" for s in self.special)

    def problem(self, value) -> str | None:
        """Why ``value`` breaks the rule, or None."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if value in self.special:
            return None
        bad = not math.isfinite(value)
        bad |= self.low is not None and (value <= self.low if self.low_open else value < self.low)
        bad |= self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"expected {self.describe()}, got {value!r}" if bad else None


def positive(**kw) -> Rule:
    return Rule(low=0, low_open=True, **kw)


def at_least(low: float, **kw) -> Rule:
    return Rule(low=low, **kw)


def fraction(high_open: bool = False, **kw) -> Rule:
    return Rule(low=0, high=1, high_open=high_open, **kw)


# fms-hf-tuning's semantics (transformers' own where fms-hf-tuning has none).
TRAINING_RULES: dict[str, Rule] = {
    "per_device_train_batch_size": at_least(1),
    "per_device_eval_batch_size": at_least(1),
    "gradient_accumulation_steps": at_least(1),
    "learning_rate": at_least(0),
    "num_train_epochs": positive(),
    "max_steps": positive(special=(-1,), meaning="-1 (train for num_train_epochs) or a number of steps > 0"),
    "warmup_ratio": fraction(),
    "warmup_steps": at_least(0),
    "weight_decay": at_least(0),
    "max_grad_norm": at_least(0),
    "adam_beta1": fraction(high_open=True),
    "adam_beta2": fraction(high_open=True),
    "adam_epsilon": positive(),
    "logging_steps": positive(),
    "save_steps": positive(),
    "eval_steps": positive(),
    "save_total_limit": at_least(1),
    "seed": at_least(0),
    "dataloader_num_workers": at_least(0),
}
