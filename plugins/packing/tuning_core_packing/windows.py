"""Epoch order and step windows for multipack: which examples train together in one step.

The epoch order is a seeded random permutation, except that "heavy" examples
(long enough to dominate a bin's attention cost, sum of len^2) are gathered
into blocks of ``num_bins`` examples of similar length. A step holding a block
gives every bin one heavy example, so attention cost stays balanced; a heavy
example moves only a few steps from its random position.

The order is then cut into contiguous windows, one per step, of about the
target token count. A window is never cut inside a block and grows until it
holds at least ``num_bins`` times its longest example, so that example can
fill a bin alone while the other bins catch up, plus a margin of short
examples to even the bins out.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

# Heavy examples are sorted by length within groups of this many blocks: more
# gives blocks of more similar lengths but moves heavy examples further.
BLOCKS_PER_SORT_GROUP = 4
# At most this fraction of examples is treated as heavy, whatever the budget.
MAX_HEAVY_FRACTION = 0.05


@dataclass(frozen=True)
class EpochOrder:
    """``perm`` lists example indices in epoch order; ``atom_starts`` marks where each
    unsplittable unit (a single example or a heavy block) begins, plus ``len(perm)``."""

    perm: np.ndarray
    atom_starts: np.ndarray


def heavy_threshold(lengths: np.ndarray, bin_budget: float) -> float:
    """Length from which an example dominates the attention cost of a bin of ``bin_budget`` tokens."""
    cap = float(np.quantile(lengths, 1.0 - MAX_HEAVY_FRACTION)) if len(lengths) else 0.0
    return max(bin_budget / 2.0, cap, 2.0)


def epoch_order(lengths: np.ndarray, num_bins: int, bin_budget: float, rng: np.random.Generator) -> EpochOrder:
    n = len(lengths)
    perm = rng.permutation(n)
    ordered = lengths[perm]
    heavy_pos = np.flatnonzero(ordered > heavy_threshold(lengths, bin_budget))
    if num_bins == 1 or len(heavy_pos) < 2:
        return EpochOrder(perm=perm, atom_starts=np.arange(n + 1))
    # Within each sort group (consecutive heavy examples in random order), sort by length and cut
    # blocks of num_bins; block j takes the place of the group's (j * num_bins)-th heavy example,
    # so blocks stay spread over the group's stretch of the epoch.
    rank = np.arange(len(heavy_pos))
    group_size = num_bins * BLOCKS_PER_SORT_GROUP
    group = rank // group_size
    by_len = heavy_pos[np.lexsort((-ordered[heavy_pos], group))]
    within = rank - group * group_size
    slot = group * group_size + (within // num_bins) * num_bins
    block_anchor = heavy_pos[slot]
    primary = np.arange(n, dtype=np.int64)
    secondary = np.zeros(n, dtype=np.int64)
    primary[by_len] = block_anchor
    secondary[by_len] = np.arange(len(by_len))
    new = np.lexsort((secondary, primary))
    keys = primary[new]
    atom_starts = np.r_[np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]), n]
    return EpochOrder(perm=perm[new], atom_starts=atom_starts)


def _feasible(size: int, tokens: int, longest: int, num_bins: int) -> bool:
    """A window can be split into num_bins non-empty bins of about equal tokens."""
    return size >= num_bins and tokens >= num_bins * longest


def walk_windows(
    lengths: np.ndarray, atom_starts: np.ndarray, target: float, num_bins: int, margin: float = 0
) -> np.ndarray:
    """Item boundaries cutting ``lengths`` (in epoch order) into windows of about ``target`` tokens.

    Cuts fall on atom boundaries only. A window grows until it holds
    num_bins * (longest example + ``margin``) tokens: the margin leaves room
    for short examples to even out the bins. A remainder too small for a
    window of its own joins the previous one.
    """
    n = len(lengths)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    # Plain lists + bisect: this loop runs once per step, numpy call overhead would dominate.
    atoms = atom_starts.tolist()
    cum_tok = np.cumsum(np.add.reduceat(lengths, atom_starts[:-1]), dtype=np.int64).tolist()
    longest = np.maximum.reduceat(lengths, atom_starts[:-1]).tolist()
    n_atoms = len(longest)
    target = max(1, round(target))
    margin = round(margin)
    bounds = [0]
    start, base = 0, 0
    while start < n_atoms:
        # Cut at the atom boundary nearest the target (before or after the atom that crosses it).
        cross = bisect_left(cum_tok, base + target)
        end = cross + 1
        if cross > start and cross < n_atoms and base + target - cum_tok[cross - 1] < cum_tok[cross] - base - target:
            end = cross
        end = max(end, bisect_left(atoms, atoms[start] + num_bins))  # at least num_bins items
        end = min(end, n_atoms)
        while end < n_atoms:
            need = num_bins * (max(longest[start:end]) + margin)
            if cum_tok[end - 1] - base >= need:
                break
            end = min(max(bisect_left(cum_tok, base + need) + 1, end + 1), n_atoms)
        bounds.append(end)
        start, base = end, cum_tok[end - 1]
    if len(bounds) > 2:
        a, b = bounds[-2], bounds[-1]
        tokens = cum_tok[b - 1] - (cum_tok[a - 1] if a else 0)
        if not _feasible(atoms[b] - atoms[a], tokens, max(longest[a:b]), num_bins):
            del bounds[-2]
    return atom_starts[np.asarray(bounds, dtype=np.int64)]


def _merge_smallest(bounds: np.ndarray, cum0: np.ndarray, count: int) -> np.ndarray:
    """Remove ``count`` boundaries by joining adjacent windows, pairs with the fewest tokens first."""
    while count > 0:
        sums = cum0[bounds[1:]] - cum0[bounds[:-1]]
        pair_sums = sums[:-1] + sums[1:]
        used = np.zeros(len(sums), dtype=bool)
        drop = []
        # Non-overlapping pairs, smallest first; a second pass handles the rare case of needing more.
        for p in np.argsort(pair_sums, kind="stable").tolist():
            if not (used[p] or used[p + 1]):
                used[p] = used[p + 1] = True
                drop.append(p + 1)
                if len(drop) == count:
                    break
        bounds = np.delete(bounds, drop)
        count -= len(drop)
    return bounds


def split_windows(
    lengths: np.ndarray, atom_starts: np.ndarray, num_steps: int, num_bins: int, target: float, margin: float = 0
) -> np.ndarray:
    """Exactly ``num_steps`` windows (item boundaries, num_steps + 1) of ``lengths`` in epoch order.

    Walks with the nominal target; when that gives too few windows (this
    epoch's long examples needed more room), walks again with a smaller
    target. Surplus windows are then merged pairwise, smallest first; merging
    keeps the room every long example needs.
    """
    n = len(lengths)
    if n < num_steps * num_bins:
        raise ValueError(f"{n} examples cannot fill {num_steps} steps of {num_bins} bins")
    bounds = walk_windows(lengths, atom_starts, target, num_bins, margin)
    for _ in range(8):
        if len(bounds) - 1 >= num_steps:
            break
        target *= 0.98 * (len(bounds) - 1) / num_steps
        bounds = walk_windows(lengths, atom_starts, target, num_bins, margin)
    else:
        # Tiny data dominated by long examples: single-example bins are the only way to the count.
        bounds = np.arange(0, n + 1, num_bins)
        bounds[-1] = n
    cum0 = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return _merge_smallest(bounds, cum0, len(bounds) - 1 - num_steps)
