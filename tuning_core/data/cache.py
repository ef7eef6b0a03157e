"""A cache of processed datasets, so a second run over the same files and settings does not re-tokenize.

The key covers the content of every data file, the processing settings, the tokenizer (its full
serialized form, special tokens and chat template) and a version number bumped whenever processing changes.
Entries are Arrow stream files, memory-mapped on load. Location: $TUNING_CORE_CACHE or ~/.cache/tuning_core.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

PROCESSING_VERSION = 2


def cache_root() -> Path:
    root = os.environ.get("TUNING_CORE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tuning_core")
    return Path(root) / "data"


def tokenizer_fingerprint(tokenizer, backend) -> str:
    h = hashlib.sha256(backend.to_str().encode())
    extra = [type(tokenizer).__name__, tokenizer.bos_token_id, tokenizer.eos_token_id,
             getattr(tokenizer, "chat_template", None)]
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_key(file_digests: list[str], settings: dict, tokenizer_fp: str) -> str:
    payload = json.dumps({"v": PROCESSING_VERSION, "files": file_digests, "settings": settings,
                          "tokenizer": tokenizer_fp}, sort_keys=True)
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
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        with pa.OSFile(str(tmp / "data.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        (tmp / "stats.json").write_text(json.dumps(stats))
        entry = root / key
        try:
            os.rename(tmp, entry)  # atomic; a concurrent run may have won the race, which is fine
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return datasets.Dataset.from_file(str(entry / "data.arrow"))
    except OSError:
        return None
