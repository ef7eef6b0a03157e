"""Shared by the benchmarks: the anchor model and data, and JSON-line output."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def anchor_model(out_dir: Path, hidden=512, layers=8, vocab=8000, seed=0) -> Path:
    """The model of performance-anchors.md: an 8-layer, 512-wide Llama with an 8000-token vocabulary."""
    from tuning_core.testing.tiny import build_model

    if not (out_dir / "config.json").exists():
        build_model(
            out_dir,
            arch="llama",
            hidden=hidden,
            layers=layers,
            heads=8,
            intermediate=hidden * 8 // 3,
            seed=seed,
            vocab_size_override=vocab,
        )
    return out_dir


def padded_data(path: Path, n=512, vocab=8000, seed=0, median=90, prompt_frac=0.6) -> Path:
    """Pretokenized JSONL with long-tailed lengths: ~55 % of a batch of 8 is padding, as in the anchors."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            length = max(8, min(512, int(rng.lognormvariate(0, 0.75) * median)))
            ids = [rng.randrange(3, vocab - 1) for _ in range(length)]
            cut = int(length * prompt_frac)
            f.write(json.dumps({"input_ids": ids, "labels": [-100] * cut + ids[cut:]}) + "\n")
    return path


def padding_fraction(path: Path, batch=8) -> float:
    lengths = [len(json.loads(line)["input_ids"]) for line in open(path)]
    real = padded = 0
    for i in range(0, len(lengths) - batch + 1, batch):
        chunk = lengths[i : i + batch]
        real += sum(chunk)
        padded += max(chunk) * len(chunk)
    return 1 - real / padded


def argv_flag(name: str, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default
