"""The multipack batch sampler: this process's share of a balanced, deterministic epoch plan.

Every process computes the same plan (see ``planner``) from the example
lengths, the seed and the epoch, then yields its own bins. A plan step has
``num_bins`` bins; process r runs bins r, r + world, r + 2 * world, ... of
each step as consecutive micro-batches, so at every micro-batch all processes
hold about the same number of tokens. Every example is used exactly once per
epoch (nothing is dropped, not the longest examples nor the last partial
step) and the number of batches is the same in every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from tuning_core_packing.planner import Plan, count_steps, plan_epoch


def example_lengths(dataset) -> np.ndarray:
    """Token count of every example of a datasets.Dataset (or any sequence of rows with input_ids)."""
    try:
        import pyarrow.compute as pc

        column = dataset.data.column("input_ids")
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        indices = getattr(dataset, "_indices", None)
        if indices is not None:  # a shuffled / selected view over the table
            lengths = lengths[indices.column(0).to_numpy()]
        return np.asarray(lengths, dtype=np.int64)
    except (AttributeError, KeyError, ImportError, TypeError):
        return np.fromiter((len(row["input_ids"]) for row in dataset), dtype=np.int64, count=len(dataset))


class MultipackBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths, num_bins: int, world_size: int, rank: int, examples_per_bin: int, seed: int = 0):
        lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        if num_bins % world_size:
            raise ValueError(f"num_bins {num_bins} is not a multiple of world_size {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if len(lengths) < num_bins:
            raise ValueError(f"{len(lengths)} examples cannot give each of {num_bins} bins one example")
        self.lengths = lengths
        self.num_bins = num_bins
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        # A bin holds about as many tokens as a padded batch of examples_per_bin examples has real tokens.
        self.bin_budget = float(examples_per_bin) * float(lengths.mean())
        self.num_steps = count_steps(lengths, num_bins, self.bin_budget, seed)
        self.epoch = 0
        self._cached: tuple[int, Plan] | None = None

    # -- the plan -----------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def plan(self, epoch: int | None = None) -> Plan:
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (
                epoch,
                plan_epoch(self.lengths, self.num_bins, self.num_steps, self.seed, epoch, self.bin_budget),
            )
        return self._cached[1]

    def rank_bins(self, rank: int | None = None) -> list[int]:
        """Bins of a step that ``rank`` runs, in order."""
        rank = self.rank if rank is None else rank
        return list(range(rank, self.num_bins, self.world_size))

    def planned_tokens(self, epoch: int | None = None) -> np.ndarray:
        """Tokens per (micro-batch of the epoch, rank), shape (len(self), world_size)."""
        sums = self.plan(epoch).bin_sums(self.lengths)  # (steps, bins)
        per_micro = sums.reshape(self.num_steps, self.num_bins // self.world_size, self.world_size)
        return per_micro.reshape(-1, self.world_size).astype(np.int64)

    # -- Sampler protocol -----------------------------------------------------

    def __len__(self) -> int:
        return self.num_steps * (self.num_bins // self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.plan()
        mine = self.rank_bins()
        for step in range(self.num_steps):
            for b in mine:
                yield plan.bin(step, b).tolist()

    def describe(self) -> str:
        return (
            f"multipack: {len(self.lengths)} examples, {self.num_steps} steps/epoch of {self.num_bins} bins "
            f"(~{self.bin_budget:.0f} tokens each), {len(self)} micro-batches per process"
        )
