"""Patience: act only after a rule has held more than ``patience_threshold`` times.

Same meaning as fms-hf-tuning: each time the rule holds the counter grows; in
``reset_on_failure`` mode (default) a miss resets it, in ``no_reset_on_failure``
mode misses are ignored. The operations run when the counter exceeds the
threshold, and the counter starts again from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("reset_on_failure", "no_reset_on_failure")


@dataclass
class Patience:
    threshold: int
    mode: str = "reset_on_failure"
    counter: int = 0

    def __post_init__(self):
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 0:
            raise ValueError(f"patience_threshold must be a whole number >= 0, not {self.threshold!r}")
        if self.mode not in MODES:
            raise ValueError(f"patience mode must be one of {', '.join(MODES)}, not {self.mode!r}")

    def should_act(self, rule_held: bool) -> bool:
        if rule_held:
            self.counter += 1
        elif self.mode == "reset_on_failure":
            self.counter = 0
        if rule_held and self.counter > self.threshold:
            self.counter = 0
            return True
        return False
