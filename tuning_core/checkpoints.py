"""Checkpoints and saved models that are complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

COMPLETE_MARKER = "checkpoint_complete.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


# Test-only: callables run before each change a save makes that no wrapped write function sees
# (tuning_core/testing/faults.py injects kills through them).
SAVE_PROBES: list = []


def probe(event: str, path: str | Path) -> None:
    for fn in SAVE_PROBES:
        fn(event, str(path))


def begin_save(checkpoint_dir: str | Path) -> None:
    """Before a save rewrites ``checkpoint_dir``: drop its marker first, then the old files.

    A run that saves into an existing checkpoint-N (a rerun with --resume_from_checkpoint False,
    or a resume that rewinds) would otherwise leave the old marker over half-rewritten files.
    """
    path = Path(checkpoint_dir)
    marker = path / COMPLETE_MARKER
    if marker.exists():
        probe("unlink", marker)
        marker.unlink()
    if path.exists():
        shutil.rmtree(path)


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


def rotate(output_dir: str | Path, limit: int | None, keep: str | Path | None = None) -> list[Path]:
    """Keep the ``limit`` most recently completed checkpoints (and ``keep``, the best one); delete the rest.

    Runs only after the newest checkpoint is marked, so a kill here always leaves one complete
    checkpoint. Unmarked checkpoints are never resumed from and go too. Returns what was deleted.
    """
    if not limit or limit <= 0:
        return []
    found = checkpoints(output_dir)
    done = sorted((p for _, p in found if is_complete(p)), key=lambda p: (p / COMPLETE_MARKER).stat().st_mtime_ns)
    if not done:
        return []
    protected = {p.resolve() for p in done[-limit:]} | ({Path(keep).resolve()} if keep else set())
    deleted = []
    for _, p in found:
        if p.resolve() not in protected:
            shutil.rmtree(p, ignore_errors=True)
            deleted.append(p)
    return deleted


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


def check_model_target(output_dir: str | Path, overwrite: bool, flag: str = "--output_dir") -> Path:
    """A command that writes a model refuses a non-empty ``output_dir`` unless told ``overwrite`` (exit 1, as
    merge's other refusals)."""
    from tuning_core.errors import UserError

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {output_dir}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"{flag} {output_dir} already exists and is not empty; pass --overwrite to replace it, "
            "or choose a new directory"
        )
    return out


@contextmanager
def staged_model_dir(output_dir: str | Path):
    """Yield a staging folder next to ``output_dir``; on success it replaces ``output_dir`` whole.

    The old content (with --overwrite) is moved aside first and deleted last, so a reader sees
    the old model or the new one, never a mix; a failed write leaves ``output_dir`` untouched.
    """
    out = Path(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            os.replace(out, old)
        os.replace(staging, out)
    finally:
        for leftover in (staging, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
