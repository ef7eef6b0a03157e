"""Checkpoints and saved models that are complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

COMPLETE_MARKER = "checkpoint_complete.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(checkpoint_dir: str | Path, step: int) -> None:
    """Written last, atomically: a checkpoint without it was interrupted and is never resumed from."""
    path = Path(checkpoint_dir) / COMPLETE_MARKER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": step}))
    os.replace(tmp, path)


def is_complete(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / COMPLETE_MARKER).is_file()


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _CHECKPOINT_RE.match(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    complete = [p for _, p in checkpoints(output_dir) if is_complete(p)]
    return complete[-1] if complete else None


def incomplete_checkpoints(output_dir: str | Path) -> list[Path]:
    return [p for _, p in checkpoints(output_dir) if not is_complete(p)]


def staging_path(target: str | Path) -> Path:
    """Where a save is written before it is promoted; the same path on every rank."""
    target = Path(target)
    return target.parent / f".{target.name}.staging"


def promote(staging: str | Path, target: str | Path) -> None:
    """Move a finished save into ``target``.

    A fresh target is one directory rename. An existing one (fms-hf-tuning
    allows save_model_dir == output_dir) gets each entry replaced atomically.
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return
    for item in staging.iterdir():
        dest = target / item.name
        if dest.is_dir():
            shutil.rmtree(dest)
        os.replace(item, dest)
    shutil.rmtree(staging, ignore_errors=True)
