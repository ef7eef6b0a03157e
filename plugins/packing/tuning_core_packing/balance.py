"""Split one step's examples into bins with equal token counts and spread attention cost.

Longest-processing-time greedy (each example, longest first, to the least
loaded bin) runs for all steps at once, vectorised over steps. Steps still
uneven afterwards get rounds of exchanges between their heaviest and lightest
bins, also vectorised over steps.
"""

from __future__ import annotations

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
        items = by_rank[rank_starts[r]:rank_starts[r + 1]]
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


def refine(lengths: np.ndarray, bounds: np.ndarray, assign: np.ndarray, num_bins: int,
           rounds: int | None = None, tolerance: float | None = None) -> None:
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
    length = lengths.astype(np.int64)
    sq = length.astype(np.float64) ** 2
    step_of = np.repeat(np.arange(steps), np.diff(bounds))
    keys = step_of * num_bins + assign
    loads = np.bincount(keys, weights=length, minlength=steps * num_bins).reshape(steps, num_bins)
    sqs = np.bincount(keys, weights=sq, minlength=steps * num_bins).reshape(steps, num_bins)
    sq_cap = sqs.max(axis=1)
    mean = loads.mean(axis=1)
    big = float(2 * (int(length.max()) + 1))  # separates (step, bin) groups in one sorted key space
    bins = np.arange(num_bins)
    active = np.arange(steps)
    for _ in range(rounds):
        hi = loads[active].argmax(axis=1)
        top = loads[active, hi]
        keep = top > mean[active] * tolerance
        active, hi, top = active[keep], hi[keep], top[keep]
        if not len(active):
            return
        k = len(active)
        # Partner bins: the few lightest of the step (all others when there are few bins).
        m = min(num_bins - 1, PARTNER_BINS)
        light = np.argpartition(loads[active], m - 1, axis=1)[:, :m] if m < num_bins - 1 else None
        is_partner = np.ones((k, num_bins), dtype=bool)
        if light is not None:
            is_partner[:] = False
            is_partner[np.arange(k)[:, None], light] = True
        is_partner[np.arange(k), hi] = False
        items, owner = _ranges(bounds[active], bounds[active + 1])
        in_hi = assign[items] == hi[owner]
        a_item, a_own = items[in_hi], owner[in_hi]
        # Partners: the examples of the partner bins, plus an empty slot (a move) in each of them.
        in_p = is_partner[owner, assign[items]]
        slot_own, slot_bin = np.nonzero(is_partner)
        other = items[in_p]
        p_own = np.concatenate([owner[in_p], slot_own])
        p_bin = np.concatenate([assign[other], slot_bin])
        p_item = np.concatenate([other, np.full(len(slot_own), -1)])
        p_len = np.concatenate([length[other], np.zeros(len(slot_own), dtype=np.int64)])
        order = np.lexsort((p_len, p_bin, p_own))
        p_own, p_bin, p_item, p_len = p_own[order], p_bin[order], p_item[order], p_len[order]
        p_key = (p_own * num_bins + p_bin) * big + p_len
        # Every (heavy example, partner bin) pair: the best partner in that bin makes the swap
        # amount d closest to half the gap; search the two nearest in sorted order.
        ai = np.repeat(np.arange(len(a_item)), num_bins)
        c = np.tile(bins, len(a_item))
        r = a_own[ai]
        keep_pair = is_partner[r, c]
        ai, c, r = ai[keep_pair], c[keep_pair], r[keep_pair]
        s = active[r]
        a_len = length[a_item[ai]]
        gap = top[r] - loads[s, c]
        pos = np.searchsorted(p_key, (r * num_bins + c) * big + (a_len - gap / 2))
        best = np.full(len(ai), np.inf)
        best_j = np.zeros(len(ai), dtype=np.int64)
        a_sq = a_len.astype(np.float64) ** 2
        for j in (np.clip(pos - 1, 0, len(p_key) - 1), np.clip(pos, 0, len(p_key) - 1)):
            d = a_len - p_len[j]
            b_sq = p_len[j].astype(np.float64) ** 2
            ok = ((p_own[j] == r) & (p_bin[j] == c) & (d > 0) & (d < gap)
                  & (sqs[s, hi[r]] - a_sq + b_sq <= sq_cap[s]) & (sqs[s, c] + a_sq - b_sq <= sq_cap[s]))
            new_max = np.where(ok, np.maximum(top[r] - d, loads[s, c] + d), np.inf)
            better = new_max < best
            best[better], best_j[better] = new_max[better], j[better]
        # One exchange per step: the pair leaving the lowest maximum of the two bins.
        pick = np.lexsort((best, r))
        first = pick[np.r_[True, r[pick][1:] != r[pick][:-1]]] if len(pick) else pick
        first = first[np.isfinite(best[first])]
        moved = np.zeros(k, dtype=bool)
        moved[r[first]] = True
        x, y = a_item[ai[first]], p_item[best_j[first]]
        st, h, cb = s[first], hi[r[first]], c[first]
        real = y >= 0
        dx = length[x] - np.where(real, length[np.maximum(y, 0)], 0)
        dsq = sq[x] - np.where(real, sq[np.maximum(y, 0)], 0.0)
        assign[x] = cb
        assign[y[real]] = h[real]
        loads[st, h] -= dx
        loads[st, cb] += dx
        sqs[st, h] -= dsq
        sqs[st, cb] += dsq
        active = active[moved]  # steps with no valid exchange are as even as this search gets them


def balance_windows(lengths: np.ndarray, bounds: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin of each example: greedy for all windows, then vectorised refinement of the uneven ones."""
    assign = lpt_bins(lengths, bounds, num_bins)
    if num_bins > 1:
        refine(lengths, bounds, assign, num_bins)
    return assign
