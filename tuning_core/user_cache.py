"""Where tuning-core keeps what it can rebuild: $TUNING_CORE_CACHE, else ~/.cache/tuning_core.

Processed datasets live under data/, flag tables under flags/ (TrainingArguments) and fields/ (LoraConfig).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("TUNING_CORE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tuning_core"))


def write_text_atomic(path: Path, text: str) -> None:
    """Best effort, whole or not at all: a read-only home only means the entry is rebuilt next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass
