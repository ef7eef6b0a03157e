"""The multipack plan: every example once, fixed step count, deterministic, balanced better than the baselines."""

import itertools

import numpy as np
import pytest
from baselines import balance, ffd_batches, long_tailed_lengths, plan_steps, random_batches
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning_core_packing.planner import count_steps, plan_epoch
from tuning_core_packing.windows import heavy_threshold


def _plan(lengths, bins, per_bin, seed=0, epoch=0):
    lengths = np.asarray(lengths, dtype=np.int64)
    budget = per_bin * lengths.mean()
    steps = count_steps(lengths, bins, budget, seed)
    return plan_epoch(lengths, bins, steps, seed, epoch, budget), steps


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 3000), min_size=1, max_size=300),
    st.integers(1, 9),
    st.integers(1, 8),
    st.integers(0, 3),
    st.integers(0, 3),
)
def test_every_example_exactly_once_in_fixed_steps_of_non_empty_bins(lengths, bins, per_bin, seed, epoch):
    if len(lengths) < bins:
        with pytest.raises(ValueError):
            _plan(lengths, bins, per_bin, seed, epoch)
        return
    plan, steps = _plan(lengths, bins, per_bin, seed, epoch)
    assert plan.num_steps == steps and 1 <= steps <= len(lengths) // bins
    assert sorted(plan.order.tolist()) == list(range(len(lengths)))
    sizes = np.diff(plan.bin_starts)
    assert len(sizes) == steps * bins and sizes.min() >= 1
    again, _ = _plan(lengths, bins, per_bin, seed, epoch)
    assert np.array_equal(plan.order, again.order) and np.array_equal(plan.bin_starts, again.bin_starts)


def test_step_count_is_the_same_every_epoch_and_order_changes():
    lengths = long_tailed_lengths(3000, seed=1)
    plans = [_plan(lengths, 4, 8, seed=5, epoch=e)[0] for e in range(4)]
    assert len({p.num_steps for p in plans}) == 1
    assert not np.array_equal(plans[0].order, plans[1].order)
    assert not np.array_equal(_plan(lengths, 4, 8, seed=6)[0].order, plans[0].order)


@pytest.fixture(scope="module")
def tailed():
    return long_tailed_lengths(20_000, seed=3)


@pytest.mark.parametrize("ranks", [2, 8])
def test_balance_beats_random_and_first_fit_decreasing(tailed, ranks):
    plan, _ = _plan(tailed, ranks, 8)
    ours = balance(plan_steps(plan), tailed)
    ffd_steps, dropped = ffd_batches(tailed, ranks, int(8 * tailed.mean()))
    ffd = balance(ffd_steps, tailed)
    rnd = balance(random_batches(tailed, ranks, 8), tailed)
    assert ours["tokens_max_over_mean"] <= 1.01
    assert ours["tokens_max_over_mean"] < ffd["tokens_max_over_mean"] < rnd["tokens_max_over_mean"]
    assert ours["attention_max_over_mean"] < ffd["attention_max_over_mean"]
    assert len(dropped) > 0  # the peer-style baseline loses examples; the plan keeps all (test above)


def test_heavy_examples_are_spread_over_bins(tailed):
    bins = 8
    plan, _ = _plan(tailed, bins, 8)
    heavy = tailed > heavy_threshold(tailed, 8 * tailed.mean())
    for s in range(plan.num_steps):
        per_bin = [int(heavy[plan.bin(s, b)].sum()) for b in range(bins)]
        assert max(per_bin) <= -(-sum(per_bin) // bins)  # never two on one bin while another has none


def test_example_longer_than_the_budget_is_kept_and_its_step_grows_around_it():
    lengths = np.array([5000] + [50] * 800)
    budget = 4 * lengths.mean()  # bins of ~4 examples: ~225 tokens, 22x shorter than the long one
    plan, _ = _plan(lengths, 4, 4)
    tokens = plan.bin_sums(lengths)
    step, b = next((s, b) for s in range(plan.num_steps) for b in range(4) if 0 in plan.bin(s, b).tolist())
    others = [i for i in plan.bin(step, b).tolist() if i != 0]
    # Its bin holds only short examples besides it, under half a budget of them: just enough to even the bins.
    assert lengths[others].sum() <= budget / 2 + 50
    assert tokens[step].max() / tokens[step].mean() <= 1.01  # the other bins catch up: nobody waits


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 4000), min_size=16, max_size=200), st.integers(2, 8), st.integers(0, 10))
def test_refinement_only_improves_the_greedy_split(lengths, bins, seed):
    from tuning_core_packing.balance import lpt_bins, refine

    lengths = np.random.default_rng(seed).permutation(np.asarray(lengths, dtype=np.int64))
    bounds = np.array([0, len(lengths) // 2, len(lengths)])
    greedy = lpt_bins(lengths, bounds, bins)
    refined = greedy.copy()
    refine(lengths, bounds, refined, bins)
    for lo, hi in itertools.pairwise(bounds):
        before = np.bincount(greedy[lo:hi], weights=lengths[lo:hi], minlength=bins)
        after = np.bincount(refined[lo:hi], weights=lengths[lo:hi], minlength=bins)
        sq_before = np.bincount(greedy[lo:hi], weights=lengths[lo:hi] ** 2.0, minlength=bins)
        sq_after = np.bincount(refined[lo:hi], weights=lengths[lo:hi] ** 2.0, minlength=bins)
        assert after.max() <= before.max() and after.sum() == before.sum()
        assert sq_after.max() <= sq_before.max() + 1e-6  # attention balance never traded away
        assert np.bincount(refined[lo:hi], minlength=bins).min() >= 1  # no bin emptied
