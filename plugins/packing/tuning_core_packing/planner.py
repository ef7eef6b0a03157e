"""Multipack planning: one epoch of examples as steps of balanced bins.

A plan for (seed, epoch) is a pure function of the example lengths, so every
rank computes the same plan on its own and a resumed run sees the same
batches. Which examples share a step is decided in ``windows``; how a step is
split into bins in ``balance``. Bin labels are shuffled per step so no rank
systematically gets a step's longest example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuning_core_packing.balance import balance_windows
from tuning_core_packing.windows import epoch_order, split_windows, walk_windows


@dataclass(frozen=True)
class Plan:
    """One epoch: ``order[bin_starts[s * num_bins + b]:bin_starts[s * num_bins + b + 1]]`` is bin b of step s."""

    order: np.ndarray
    bin_starts: np.ndarray
    num_steps: int
    num_bins: int

    def bin(self, step: int, b: int) -> np.ndarray:
        k = step * self.num_bins + b
        return self.order[self.bin_starts[k] : self.bin_starts[k + 1]]

    def bin_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values[example]`` per bin, shape (num_steps, num_bins)."""
        per_example = np.asarray(values, dtype=np.float64)[self.order]
        csum = np.concatenate([[0.0], np.cumsum(per_example)])
        sums = csum[self.bin_starts[1:]] - csum[self.bin_starts[:-1]]
        return sums.reshape(self.num_steps, self.num_bins)


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """Independent generator per (seed, epoch, purpose); stream 0 plans epochs, 1 counts steps."""
    return np.random.default_rng([stream, epoch, seed])


def count_steps(lengths: np.ndarray, num_bins: int, bin_budget: float, seed: int) -> int:
    """Steps per epoch for bins of about ``bin_budget`` tokens; the same for every epoch.

    Counted on an epoch order of its own, so it includes the growth of windows
    around long examples; each epoch then adjusts its windows to this count.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n < num_bins:
        raise ValueError(f"{n} examples cannot fill {num_bins} bins")
    order = epoch_order(lengths, num_bins, bin_budget, _rng(seed, 0, 1))
    steps = (
        len(walk_windows(lengths[order.perm], order.atom_starts, num_bins * bin_budget, num_bins, bin_budget / 2)) - 1
    )
    return max(1, min(steps, n // num_bins))


def plan_epoch(lengths: np.ndarray, num_bins: int, num_steps: int, seed: int, epoch: int, bin_budget: float) -> Plan:
    """The full plan of one epoch (identical on every rank for the same arguments)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rng = _rng(seed, epoch, 0)
    order = epoch_order(lengths, num_bins, bin_budget, rng)
    perm = order.perm
    ordered = lengths[perm]
    # Windows leave half a bin of short examples around the longest one (see windows.walk_windows).
    bounds = split_windows(ordered, order.atom_starts, num_steps, num_bins, num_bins * bin_budget, bin_budget / 2)
    relabel = rng.random((num_steps, num_bins)).argsort(axis=1)
    step_of = np.repeat(np.arange(num_steps), np.diff(bounds))
    bins = relabel[step_of, balance_windows(ordered, bounds, num_bins)]
    keys = step_of * num_bins + bins  # stable sort on (step, bin) groups each bin
    grouping = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=num_steps * num_bins)
    bin_starts = np.concatenate([[0], np.cumsum(counts)])
    return Plan(order=perm[grouping], bin_starts=bin_starts, num_steps=num_steps, num_bins=num_bins)
