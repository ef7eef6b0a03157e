"""A cache of processed datasets, so a second run over the same files and settings does not re-tokenize.

The key covers the content of every data file, the processing settings, the tokenizer (its full
serialized form, special tokens and chat template) and a version number bumped whenever processing changes.
Entries are Arrow stream files, memory-mapped on load. Location: $TUNING_CORE_CACHE or ~/.cache/tuning_core.

Bounded: after each store the least recently used entries go until the cache holds at most
$TUNING_CORE_CACHE_MAX_GB (default 5) GB, and temporary folders a killed run left behind
(``.tmp-*`` older than an hour) are removed. ``tuning-core data cache --clear`` empties it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tuning_core import user_cache

PROCESSING_VERSION = 2
DEFAULT_MAX_GB = 5.0
STALE_TMP_SECONDS = 3600  # a store in progress in another process is younger than this


def cache_root() -> Path:
    return user_cache.cache_root() / "data"


def tokenizer_fingerprint(tokenizer, backend) -> str:
    h = hashlib.sha256(backend.to_str().encode())
    extra = [
        type(tokenizer).__name__,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        getattr(tokenizer, "chat_template", None),
    ]
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_key(file_digests: list[str], settings: dict, tokenizer_fp: str) -> str:
    payload = json.dumps(
        {"v": PROCESSING_VERSION, "files": file_digests, "settings": settings, "tokenizer": tokenizer_fp},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def load(key: str):
    """(datasets.Dataset, stats) for ``key``, or None when not cached or unreadable."""
    import datasets

    entry = cache_root() / key
    if not entry.is_dir():
        return None
    try:
        stats = json.loads((entry / "stats.json").read_text())
        dataset = datasets.Dataset.from_file(str(entry / "data.arrow"))
        if dataset.column_names != ["input_ids", "labels"] or len(dataset) != stats["num_examples"]:
            raise ValueError("incomplete entry")
        os.utime(entry)  # recently used: evicted last
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(entry, ignore_errors=True)  # damaged: rebuild it rather than fail or trust it
        return None
    return dataset, stats


def store(key: str, table, stats: dict):
    """Write ``table`` (a pyarrow Table) and ``stats``; return the memory-mapped Dataset, or None on failure."""
    import datasets
    import pyarrow as pa

    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(root)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        with pa.OSFile(str(tmp / "data.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        (tmp / "stats.json").write_text(json.dumps(stats))
        entry = root / key
        try:
            os.rename(tmp, entry)  # atomic; a concurrent run may have won the race, which is fine
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        evict(root, max_bytes(), keep=entry)
        return datasets.Dataset.from_file(str(entry / "data.arrow"))
    except OSError:
        return None


def max_bytes() -> int:
    from tuning_core.errors import ConfigError

    raw = os.environ.get("TUNING_CORE_CACHE_MAX_GB", "")
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        raise ConfigError(f"TUNING_CORE_CACHE_MAX_GB={raw[:50]!r}: expected a number of gigabytes") from None
    return int(gb * 1e9)


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def entries(root: Path | None = None) -> list[Path]:
    root = root or cache_root()
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []


def evict(root: Path, limit: int, keep: Path | None = None) -> list[Path]:
    """Delete least recently used entries until the cache is at most ``limit`` bytes (``keep`` stays)."""
    found = sorted(entries(root), key=lambda p: p.stat().st_mtime)
    sizes = {p: size(p) for p in found}
    total, removed = sum(sizes.values()), []
    for p in found:
        if total <= limit:
            break
        if keep is not None and p == keep:
            continue
        shutil.rmtree(p, ignore_errors=True)
        total -= sizes[p]
        removed.append(p)
    return removed


def remove_stale_temp(root: Path, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    import time

    stale = [p for p in root.glob(".tmp-*") if time.time() - p.stat().st_mtime > older_than]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def clear() -> tuple[int, int]:
    """Remove every entry and temporary folder; returns (entries removed, bytes freed)."""
    root = cache_root()
    if not root.is_dir():
        return 0, 0
    items = [p for p in root.iterdir() if p.is_dir()]
    freed = sum(size(p) for p in items)
    for p in items:
        shutil.rmtree(p, ignore_errors=True)
    return len([p for p in items if not p.name.startswith(".")]), freed
