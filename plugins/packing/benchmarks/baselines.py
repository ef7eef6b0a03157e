"""Reference samplers the multipack plan is measured against (benchmarks and tests).

Both return a list of steps; a step is a list of per-rank index arrays.
"""

from __future__ import annotations

import numpy as np


def long_tailed_lengths(n: int, seed: int = 0, median: int = 201, sigma: float = 1.0, max_len: int = 4096):
    """Log-normal token counts (median ~201, clipped to [8, max_len]): the performance-anchors distribution."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(median), sigma, n)), 8, max_len).astype(np.int64)


def random_batches(lengths: np.ndarray, num_ranks: int, batch_size: int, seed: int = 0):
    """A plain distributed sampler: shuffle, deal indices round-robin to ranks, batch_size per rank per step."""
    perm = np.random.default_rng(seed).permutation(len(lengths))
    per_rank = [perm[r::num_ranks] for r in range(num_ranks)]
    steps = min(len(p) for p in per_rank) // batch_size
    return [[p[s * batch_size : (s + 1) * batch_size] for p in per_rank] for s in range(steps)]


def _ffd_fits(sizes: np.ndarray, num_bins: int, capacity: int) -> bool:
    space = np.full(num_bins, capacity, dtype=np.int64)
    for size in np.sort(sizes)[::-1].tolist():
        fit = np.flatnonzero(space >= size)
        if not len(fit):
            return False
        space[fit[0]] -= size
    return True


def _ffd_assign(idx: np.ndarray, lengths: np.ndarray, num_bins: int, capacity: int):
    space = np.full(num_bins, capacity, dtype=np.int64)
    bins = [[] for _ in range(num_bins)]
    for i in idx[np.argsort(-lengths[idx], kind="stable")].tolist():
        b = int(np.flatnonzero(space >= lengths[i])[0])
        space[b] -= lengths[i]
        bins[b].append(i)
    return [np.asarray(b, dtype=np.int64) for b in bins]


def ffd_batches(lengths: np.ndarray, num_ranks: int, capacity: int, seed: int = 0):
    """First-fit-decreasing multipack as the peer does it: take the longest run of shuffled examples that FFD
    fits into num_ranks bins of ``capacity`` tokens. Like the peer, it drops examples longer than a bin and the
    last partial step. Returns (steps, dropped example indices)."""
    perm = np.random.default_rng(seed).permutation(len(lengths))
    too_long = lengths[perm] > capacity
    dropped = list(perm[too_long])
    kept = perm[~too_long]
    cum = np.cumsum(lengths[kept])
    steps, start, base = [], 0, 0
    while start < len(kept):
        hi = int(np.searchsorted(cum, base + capacity * num_ranks, side="right")) - start + 1
        lo = 1
        while hi - lo > 1:  # largest fitting prefix, by bisection like the peer
            mid = (lo + hi) // 2
            if _ffd_fits(lengths[kept[start : start + mid]], num_ranks, capacity):
                lo = mid
            else:
                hi = mid
        bins = _ffd_assign(kept[start : start + lo], lengths, num_ranks, capacity)
        if any(len(b) == 0 for b in bins):  # the peer stops at the first step it cannot fill
            dropped.extend(kept[start:].tolist())
            break
        steps.append(bins)
        start += lo
        base = int(cum[start - 1])
    return steps, np.asarray(dropped, dtype=np.int64)


def plan_steps(plan):
    """A multipack Plan as the same list-of-steps shape."""
    return [[plan.bin(s, b) for b in range(plan.num_bins)] for s in range(plan.num_steps)]


def balance(steps, lengths: np.ndarray) -> dict:
    """Per-step max/mean over ranks of tokens and of attention cost (sum of len^2), as sum(max) / sum(mean):
    the time all ranks spend over the time they would with perfect balance."""
    tok = np.array([[lengths[b].sum() for b in step] for step in steps], dtype=np.float64)
    sq = np.array([[(lengths[b].astype(np.float64) ** 2).sum() for b in step] for step in steps])
    return {
        "tokens_max_over_mean": float(tok.max(1).sum() / tok.mean(1).sum()),
        "attention_max_over_mean": float(sq.max(1).sum() / sq.mean(1).sum()),
        "worst_step_tokens": float((tok.max(1) / tok.mean(1)).max()),
        "steps": len(steps),
    }
