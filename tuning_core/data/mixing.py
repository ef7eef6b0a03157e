"""Split each dataset into train/validation, then mix the training parts by their sampling ratios.

Mixing follows ``datasets.interleave_datasets`` with probabilities: each step draws a dataset with its
probability (numpy's generator, seeded, so a seed gives the same mix every time) and takes its next example.
``first_exhausted`` stops when a drawn dataset has no example left; ``all_exhausted`` starts a finished
dataset over and stops once every dataset has been used up at least once. Only indices are computed: the
examples themselves stay in their memory-mapped tables.
"""

from __future__ import annotations

from tuning_core.errors import ConfigError


def split_indices(n: int, shares: dict[str, float], seed: int, shuffle: bool) -> dict[str, list[int]]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    n_train = round(n * shares.get("train", 0.0))
    n_val = round(n * shares.get("validation", 0.0))
    n_val = min(n_val, n - n_train)
    return {"train": order[:n_train].tolist(), "validation": order[n_train : n_train + n_val].tolist()}


def interleave(lengths: list[int], probabilities: list[float], seed: int, strategy: str) -> list[tuple[int, int]]:
    """(dataset, row) pairs in the order drawn."""
    import numpy as np

    active = [i for i, (n, p) in enumerate(zip(lengths, probabilities, strict=False)) if n > 0 and p > 0]
    probs = np.array([probabilities[i] for i in active], dtype=float)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    position = [0] * len(lengths)
    exhausted = set()
    out: list[tuple[int, int]] = []
    limit = 10 * sum(lengths) + 1000  # all_exhausted with a tiny share is long but never endless
    while len(out) < limit:
        for pick in rng.choice(len(active), size=1024, p=probs):
            i = active[pick]
            if position[i] == lengths[i]:
                if strategy == "first_exhausted":
                    return out
                position[i] = 0
            out.append((i, position[i]))
            position[i] += 1
            if position[i] == lengths[i]:
                exhausted.add(i)
                if strategy == "all_exhausted" and len(exhausted) == len(active):
                    return out
    return out


def combine(parts, data_config, pack_length: int | None = None):
    """ProcessedData from [(DatasetConfig, Dataset, stats)]: splits, mixing, validation, packing, streaming."""
    import datasets

    from tuning_core.data.pipeline import ProcessedData

    proc = data_config.dataprocessor
    where = data_config.path or "the data"
    trains, evals, weights = [], [], []
    for d, ds, _ in parts:
        n = len(ds)
        if d.split is None:
            trains.append((d, ds))
            weights.append(d.sampling)
            continue
        if proc.streaming and d.split.get("train", 0.0) not in (0.0, 1.0):
            raise ConfigError(
                f"{d.where}: a streamed dataset can only be split whole (train: 1.0 or validation: 1.0), not {d.split}"
            )
        idx = split_indices(n, d.split, proc.seed, d.shuffle)
        if d.split.get("train", 0.0) > 0 and not idx["train"]:
            raise ConfigError(f"{d.where}: split train {d.split['train']:g} of {n} examples leaves no training data")
        if idx["train"]:
            trains.append((d, ds.select(idx["train"]) if len(idx["train"]) != n else ds))
            weights.append(d.sampling)
        if idx["validation"]:
            evals.append(ds.select(idx["validation"]) if len(idx["validation"]) != n else ds)
    if not trains:
        raise ConfigError(f"{where}: no dataset gives training data (every split has train 0)")

    if len(trains) == 1:
        train = trains[0][1]
    elif all(w is not None for w in weights):
        pairs = interleave([len(t) for _, t in trains], weights, proc.seed, proc.sampling_stopping_strategy)
        offsets, total = [], 0
        for _, t in trains:
            offsets.append(total)
            total += len(t)
        train = datasets.concatenate_datasets([t for _, t in trains]).select([offsets[i] + r for i, r in pairs])
    else:
        train = datasets.concatenate_datasets([t for _, t in trains])
    eval_ds = None if not evals else evals[0] if len(evals) == 1 else datasets.concatenate_datasets(evals)

    stats = _stats(parts, train, eval_ds)
    if pack_length:
        from tuning_core.data.packing import pack

        before = len(train)
        train = pack(train, pack_length)
        eval_ds = pack(eval_ds, pack_length) if eval_ds is not None else None
        stats.update(packed_from=before, num_examples=len(train), format=f"{stats.get('format')}, packed")
    if proc.streaming:
        train = train.to_iterable_dataset()
        stats["streaming"] = True
    return ProcessedData(train, eval_ds, stats)


def _stats(parts, train, eval_ds) -> dict:
    """One dataset: its own stats (as before data configs). Several: summed, with each dataset's under 'datasets'."""
    train_parts = [(d, s) for d, _, s in parts if d.share("train") > 0]
    eval_parts = [(d, s) for d, _, s in parts if d.share("train") == 0]
    if len(parts) == len(train_parts) == 1:
        stats = dict(parts[0][2])
        stats["eval"] = None
        return stats
    if len(train_parts) == 1 and all(d.split == {"validation": 1.0} for d, _ in eval_parts) and len(eval_parts) == 1:
        stats = dict(train_parts[0][1])  # the flag path with --validation_data_path
        stats["eval"] = dict(eval_parts[0][1])
        return stats
    formats = list(dict.fromkeys(s.get("format") for _, _, s in parts))
    stats = {
        "format": "+".join(f for f in formats if f),
        "num_examples": len(train),
        "max_seq_length": max(s.get("max_seq_length", 0) for _, _, s in parts),
        "num_truncated": sum(s.get("num_truncated", 0) for _, _, s in parts),
        "num_skipped_no_template": sum(s.get("num_skipped_no_template", 0) for _, _, s in parts),
        "num_dropped_no_labels": sum(s.get("num_dropped_no_labels", 0) for _, _, s in parts),
        "cache_hit": all(s.get("cache_hit") for _, _, s in parts),
        "datasets": {d.name: s for d, _, s in parts},
    }
    stats["eval"] = {"num_examples": len(eval_ds)} if eval_ds is not None else None
    return stats
