"""Multipack balance and build time, against a plain distributed sampler and first-fit-decreasing.

Prints one JSON line per result. Balance is sum over steps of the slowest rank
over sum of the mean rank ("max/mean"): 1.0 means no rank ever waits. For
tokens and for attention cost (sum of len^2 per rank).

    python plugins/packing/benchmarks/bench_multipack.py            # 100k examples, 1M for build time
    python plugins/packing/benchmarks/bench_multipack.py --examples 20000 --build-examples 100000   # quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import balance, ffd_batches, long_tailed_lengths, plan_steps, random_batches

from tuning_core_packing.planner import count_steps, plan_epoch


def emit(**row):
    print(json.dumps(row), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--build-examples", type=int, default=1_000_000)
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 64])
    p.add_argument("--batch-size", type=int, default=8, help="examples per rank per step (sets the token budget)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    lengths = long_tailed_lengths(args.examples, seed=args.seed)
    emit(
        bench="multipack_data",
        examples=len(lengths),
        median=float(np.median(lengths)),
        mean=round(float(lengths.mean()), 1),
        max=int(lengths.max()),
        tokens=int(lengths.sum()),
    )
    budget = args.batch_size * float(lengths.mean())
    for ranks in args.ranks:
        t0 = time.perf_counter()
        steps = count_steps(lengths, ranks, budget, args.seed)
        plan = plan_epoch(lengths, ranks, steps, args.seed, 0, budget)
        seconds = time.perf_counter() - t0
        ours = balance(plan_steps(plan), lengths)
        emit(
            bench="multipack_balance",
            sampler="multipack",
            ranks=ranks,
            dropped_tokens_fraction=0.0,
            plan_seconds=round(seconds, 3),
            **_rounded(ours),
        )
        rnd = balance(random_batches(lengths, ranks, args.batch_size, args.seed), lengths)
        used = sum(len(b) for step in random_batches(lengths, ranks, args.batch_size, args.seed) for b in step)
        emit(
            bench="multipack_balance",
            sampler="random",
            ranks=ranks,
            dropped_examples=len(lengths) - used,
            **_rounded(rnd),
        )
        t0 = time.perf_counter()
        ffd_steps, dropped = ffd_batches(lengths, ranks, round(budget), args.seed)
        ffd_seconds = time.perf_counter() - t0
        ffd = balance(ffd_steps, lengths)
        emit(
            bench="multipack_balance",
            sampler="first_fit_decreasing",
            ranks=ranks,
            dropped_examples=len(dropped),
            dropped_tokens_fraction=round(float(lengths[dropped].sum() / lengths.sum()), 4),
            plan_seconds=round(ffd_seconds, 3),
            **_rounded(ffd),
        )
        emit(
            bench="multipack_vs_baselines",
            ranks=ranks,
            tokens_ratio_vs_random=round(ours["tokens_max_over_mean"] / rnd["tokens_max_over_mean"], 4),
            tokens_ratio_vs_ffd=round(ours["tokens_max_over_mean"] / ffd["tokens_max_over_mean"], 4),
            attention_ratio_vs_ffd=round(ours["attention_max_over_mean"] / ffd["attention_max_over_mean"], 4),
        )

    big = long_tailed_lengths(args.build_examples, seed=args.seed + 1)
    for ranks in (8,):
        t0 = time.perf_counter()
        steps = count_steps(big, ranks, args.batch_size * float(big.mean()), args.seed)
        t1 = time.perf_counter()
        plan_epoch(big, ranks, steps, args.seed, 0, args.batch_size * float(big.mean()))
        t2 = time.perf_counter()
        emit(
            bench="multipack_build_time",
            examples=len(big),
            ranks=ranks,
            count_steps_seconds=round(t1 - t0, 3),
            plan_epoch_seconds=round(t2 - t1, 3),
            total_seconds=round(t2 - t0, 3),
        )


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


if __name__ == "__main__":
    main()
