"""Split one step's examples into bins with equal token counts and spread attention cost.

Longest-processing-time greedy (each example, longest first, to the least
loaded bin) runs for all steps at once, vectorised over steps. Steps still
uneven afterwards get rounds of exchanges between their heaviest and lightest
bins, also vectorised over steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Refinement stops for a step once its max/mean tokens is within this factor,
# or after this many exchanges.
REFINE_TOLERANCE = 1.001
REFINE_ROUNDS = 32
# Exchanges are searched with this many of the step's lightest bins.
PARTNER_BINS = 4


def lpt_bins(lengths: np.ndarray, bounds: np.ndarray, num_bins: int) -> np.ndarray:
    """Longest-first greedy in every window at once: the bin (0..num_bins-1) of each example.

    Round r places the r-th longest example of every window on that window's
    least-loaded bin; the first num_bins rounds fill the empty bins, so no bin
    is ever empty and the longest examples of a window land on different bins.
    """
    n, steps = len(lengths), len(bounds) - 1
    step_of = np.repeat(np.arange(steps), np.diff(bounds))
    order = np.lexsort((-lengths, step_of))  # by window, longest first, ties by position
    rank = np.arange(n) - bounds[:-1][step_of[order]]
    by_rank = order[np.argsort(rank, kind="stable")]
    rank_starts = np.concatenate([[0], np.cumsum(np.bincount(rank))])
    loads = np.zeros((steps, num_bins), dtype=np.int64)
    assign = np.empty(n, dtype=np.int64)
    for r in range(len(rank_starts) - 1):
        items = by_rank[rank_starts[r] : rank_starts[r + 1]]
        win = step_of[items]
        b = np.argmin(loads[win], axis=1)
        loads[win, b] += lengths[items]
        assign[items] = b
    return assign


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated aranges [starts[i], ends[i]) and, for each element, the i it came from."""
    counts = ends - starts
    owner = np.repeat(np.arange(len(starts)), counts)
    offsets = np.cumsum(counts) - counts
    return np.arange(counts.sum()) - offsets[owner] + starts[owner], owner


@dataclass
class _Loads:
    """Per-example sizes and per-(step, bin) totals that the refinement keeps up to date."""

    length: np.ndarray  # int64 tokens of each example
    length_sq: np.ndarray  # float64 len^2 of each example (its attention cost)
    tokens: np.ndarray  # [steps, bins] tokens per bin
    attention: np.ndarray  # [steps, bins] sum of len^2 per bin
    attention_cap: np.ndarray  # [steps] the step's largest attention sum at the start: never exceeded
    mean_tokens: np.ndarray  # [steps]


def _loads(lengths: np.ndarray, step_of: np.ndarray, assign: np.ndarray, steps: int, num_bins: int) -> _Loads:
    length = lengths.astype(np.int64)
    length_sq = length.astype(np.float64) ** 2
    keys = step_of * num_bins + assign
    size = steps * num_bins
    tokens = np.bincount(keys, weights=length, minlength=size).reshape(steps, num_bins)
    attention = np.bincount(keys, weights=length_sq, minlength=size).reshape(steps, num_bins)
    return _Loads(length, length_sq, tokens, attention, attention.max(axis=1), tokens.mean(axis=1))


def _partner_mask(tokens: np.ndarray, heavy_bin: np.ndarray, num_bins: int) -> np.ndarray:
    """[active, bins]: the bins the heavy bin may exchange with, the few lightest of the step (all others
    when there are few bins)."""
    n_active = len(tokens)
    n_partners = min(num_bins - 1, PARTNER_BINS)
    mask = np.ones((n_active, num_bins), dtype=bool)
    if n_partners < num_bins - 1:
        lightest = np.argpartition(tokens, n_partners - 1, axis=1)[:, :n_partners]
        mask[:] = False
        mask[np.arange(n_active)[:, None], lightest] = True
    mask[np.arange(n_active), heavy_bin] = False
    return mask


@dataclass
class _Candidates:
    """What a heavy example can trade with, sorted by (active row, bin, length): every example of a
    partner bin, plus one empty slot (length 0, item -1: a plain move) per partner bin."""

    row: np.ndarray
    bin: np.ndarray
    item: np.ndarray
    length: np.ndarray
    key: np.ndarray  # one sorted key space: (row, bin) groups, then length within a group


def _candidates(items, row_of_item, assign, partner_mask, length, num_bins, spacing) -> _Candidates:
    in_partner = partner_mask[row_of_item, assign[items]]
    slot_row, slot_bin = np.nonzero(partner_mask)
    partner_items = items[in_partner]
    row = np.concatenate([row_of_item[in_partner], slot_row])
    bin_ = np.concatenate([assign[partner_items], slot_bin])
    item = np.concatenate([partner_items, np.full(len(slot_row), -1)])
    cand_len = np.concatenate([length[partner_items], np.zeros(len(slot_row), dtype=np.int64)])
    order = np.lexsort((cand_len, bin_, row))
    row, bin_, item, cand_len = row[order], bin_[order], item[order], cand_len[order]
    return _Candidates(row, bin_, item, cand_len, (row * num_bins + bin_) * spacing + cand_len)


def _best_exchanges(
    loads: _Loads,
    cands: _Candidates,
    heavy_item,
    heavy_row,
    active,
    heavy_bin,
    heavy_load,
    partner_mask,
    num_bins,
    spacing,
):
    """For every (heavy example, partner bin) pair, the candidate whose exchange leaves the lower maximum of the
    two bins, searched among the two candidates nearest to an exchange of half the gap.

    Returns (pair_heavy, pair_bin, pair_row, best_max, best_cand); best_max is inf where no exchange is valid:
    it must shrink the heavy bin without overshooting the partner, nor raise either bin's attention above the cap.
    """
    pair_heavy = np.repeat(np.arange(len(heavy_item)), num_bins)
    pair_bin = np.tile(np.arange(num_bins), len(heavy_item))
    pair_row = heavy_row[pair_heavy]
    keep = partner_mask[pair_row, pair_bin]
    pair_heavy, pair_bin, pair_row = pair_heavy[keep], pair_bin[keep], pair_row[keep]
    step = active[pair_row]
    out_len = loads.length[heavy_item[pair_heavy]]
    out_sq = out_len.astype(np.float64) ** 2
    gap = heavy_load[pair_row] - loads.tokens[step, pair_bin]
    pos = np.searchsorted(cands.key, (pair_row * num_bins + pair_bin) * spacing + (out_len - gap / 2))
    best_max = np.full(len(pair_heavy), np.inf)
    best_cand = np.zeros(len(pair_heavy), dtype=np.int64)
    last = len(cands.key) - 1
    for j in (np.clip(pos - 1, 0, last), np.clip(pos, 0, last)):
        shift = out_len - cands.length[j]
        in_sq = cands.length[j].astype(np.float64) ** 2
        cap = loads.attention_cap[step]
        valid = (
            (cands.row[j] == pair_row)
            & (cands.bin[j] == pair_bin)
            & (shift > 0)
            & (shift < gap)
            & (loads.attention[step, heavy_bin[pair_row]] - out_sq + in_sq <= cap)
            & (loads.attention[step, pair_bin] + out_sq - in_sq <= cap)
        )
        new_max = np.where(
            valid, np.maximum(heavy_load[pair_row] - shift, loads.tokens[step, pair_bin] + shift), np.inf
        )
        better = new_max < best_max
        best_max[better], best_cand[better] = new_max[better], j[better]
    return pair_heavy, pair_bin, pair_row, best_max, best_cand


def _one_per_step(pair_row: np.ndarray, best_max: np.ndarray) -> np.ndarray:
    """Index of each active row's best valid pair (the lowest resulting maximum); rows without one are absent."""
    by_row = np.lexsort((best_max, pair_row))
    first = by_row[np.r_[True, pair_row[by_row][1:] != pair_row[by_row][:-1]]] if len(by_row) else by_row
    return first[np.isfinite(best_max[first])]


def _apply_exchanges(loads: _Loads, assign, step, from_bin, to_bin, out_item, in_item) -> None:
    """Move each out_item to to_bin and each real in_item (>= 0) back to from_bin, updating the totals."""
    real = in_item >= 0
    in_safe = np.maximum(in_item, 0)
    d_tokens = loads.length[out_item] - np.where(real, loads.length[in_safe], 0)
    d_attention = loads.length_sq[out_item] - np.where(real, loads.length_sq[in_safe], 0.0)
    assign[out_item] = to_bin
    assign[in_item[real]] = from_bin[real]
    loads.tokens[step, from_bin] -= d_tokens
    loads.tokens[step, to_bin] += d_tokens
    loads.attention[step, from_bin] -= d_attention
    loads.attention[step, to_bin] += d_attention


def refine(
    lengths: np.ndarray,
    bounds: np.ndarray,
    assign: np.ndarray,
    num_bins: int,
    rounds: int | None = None,
    tolerance: float | None = None,
) -> None:
    """Even out every uneven step in place, all steps at once.

    Each round, in each step still above ``tolerance`` x mean tokens, one
    example of the heaviest bin moves to another bin or swaps with a shorter
    example there: the exchange that lowers the heavy bin most without making
    the other bin heavier than it was, and without raising the step's largest
    sum of len^2 (attention cost). A step with no such exchange stops.
    """
    rounds = REFINE_ROUNDS if rounds is None else rounds
    tolerance = REFINE_TOLERANCE if tolerance is None else tolerance
    steps = len(bounds) - 1
    step_of = np.repeat(np.arange(steps), np.diff(bounds))
    loads = _loads(lengths, step_of, assign, steps, num_bins)
    spacing = float(2 * (int(loads.length.max()) + 1))  # separates (row, bin) groups in one sorted key space
    active = np.arange(steps)
    for _ in range(rounds):
        heavy_bin = loads.tokens[active].argmax(axis=1)
        heavy_load = loads.tokens[active, heavy_bin]
        uneven = heavy_load > loads.mean_tokens[active] * tolerance
        active, heavy_bin, heavy_load = active[uneven], heavy_bin[uneven], heavy_load[uneven]
        if not len(active):
            return
        partner_mask = _partner_mask(loads.tokens[active], heavy_bin, num_bins)
        items, row_of_item = _ranges(bounds[active], bounds[active + 1])
        in_heavy = assign[items] == heavy_bin[row_of_item]
        heavy_item, heavy_row = items[in_heavy], row_of_item[in_heavy]
        cands = _candidates(items, row_of_item, assign, partner_mask, loads.length, num_bins, spacing)
        pair_heavy, pair_bin, pair_row, best_max, best_cand = _best_exchanges(
            loads, cands, heavy_item, heavy_row, active, heavy_bin, heavy_load, partner_mask, num_bins, spacing
        )
        chosen = _one_per_step(pair_row, best_max)
        rows = pair_row[chosen]
        _apply_exchanges(
            loads,
            assign,
            step=active[rows],
            from_bin=heavy_bin[rows],
            to_bin=pair_bin[chosen],
            out_item=heavy_item[pair_heavy[chosen]],
            in_item=cands.item[best_cand[chosen]],
        )
        moved = np.zeros(len(active), dtype=bool)
        moved[rows] = True
        active = active[moved]  # steps with no valid exchange are as even as this search gets them


def balance_windows(lengths: np.ndarray, bounds: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin of each example: greedy for all windows, then vectorised refinement of the uneven ones."""
    assign = lpt_bins(lengths, bounds, num_bins)
    if num_bins > 1:
        refine(lengths, bounds, assign, num_bins)
    return assign
