"""Test-only fault injection: stop a run at the Nth file write (or delete) of its checkpoints.

Every write a checkpoint save makes goes through one of the functions wrapped here
(Python's open, torch.save, safetensors' save_file under each name transformers and peft
import it by, os.replace/rename, shutil.rmtree, the tokenizer's save) or through a
``tuning_core.checkpoints.probe`` call. Each one under ``root``/checkpoint-* counts as a write event;
the Nth event runs the chosen fault *before* the write happens:

* ``raise``: raise ``SimulatedKill`` (a BaseException nothing catches), for in-process tests;
* ``exit``: ``os._exit(137)`` as SIGKILL would, no cleanup, for subprocess tests;
* ``enospc``: raise ``OSError(ENOSPC)``, a full disk.

With ``half=True`` the file a "write" event was about to write is left truncated, as a kill
in the middle of that write would leave it (a "rename" is atomic: it happens or not).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path


class SimulatedKill(BaseException):
    """The process 'died' here. BaseException, so no `except Exception` in the save path swallows it."""


class WriteFaults:
    def __init__(self, root, at: int | None, action: str = "raise", half: bool = False):
        self.root = str(Path(root).resolve())
        self.at, self.action, self.half = at, action, half
        self.events: list[tuple[str, str]] = []

    def __call__(self, event: str, path) -> None:
        try:
            full = str(Path(os.fspath(path)).resolve())
        except (TypeError, ValueError):
            return
        if not full.startswith(self.root + os.sep):
            return
        rel = os.path.relpath(full, self.root)
        if not rel.startswith("checkpoint-"):  # the run's logs are not part of a save
            return
        self.events.append((event, rel))
        if self.at is None or len(self.events) != self.at:
            return
        if self.half and event == "write":
            with _real_open(full, "wb") as f:
                f.write(b"\0half-written")
        if self.action == "exit":
            sys.stderr.flush()
            os._exit(137)
        if self.action == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", full)
        raise SimulatedKill(f"write {self.at}: {event} {full}")


_real_open = builtins.open


def _wrap(fault, fn, event, path_arg=0, mode_check=False):
    def wrapper(*args, **kwargs):
        path = args[path_arg] if len(args) > path_arg else next(iter(kwargs.values()), None)
        if mode_check:
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
            if not any(c in str(mode) for c in "wax+"):
                return fn(*args, **kwargs)
        if isinstance(path, (str, os.PathLike)):
            fault(event, path)
        return fn(*args, **kwargs)

    wrapper.__wrapped__ = fn
    return wrapper


def _targets():
    """(object, attribute, event, index of the path argument, open-like?) for every write we intercept."""
    import safetensors.torch
    import torch
    import transformers.modeling_utils

    out = [
        (builtins, "open", "write", 0, True),
        (io, "open", "write", 0, True),
        (torch, "save", "write", 1, False),
        (safetensors.torch, "save_file", "write", 1, False),
        (transformers.modeling_utils, "safe_save_file", "write", 1, False),
        (os, "replace", "rename", 1, False),
        (os, "rename", "rename", 1, False),
        (shutil, "rmtree", "rmtree", 0, False),
    ]
    try:
        import peft.peft_model
        import peft.utils.save_and_load

        out.append((peft.peft_model, "safe_save_file", "write", 1, False))
        if hasattr(peft.utils.save_and_load, "safe_save_file"):
            out.append((peft.utils.save_and_load, "safe_save_file", "write", 1, False))
    except ImportError:
        pass
    from transformers import PreTrainedTokenizerBase

    out.append((PreTrainedTokenizerBase, "save_pretrained", "write", 1, False))  # tokenizer.json is written in Rust
    return out


@contextmanager
def write_faults(root, at: int | None = None, action: str = "raise", half: bool = False):
    """Count (and with ``at``, fault) every write event under ``root`` while the block runs."""
    from tuning_core import checkpoints

    fault = WriteFaults(root, at, action, half)
    patched = []
    for obj, attr, event, idx, is_open in _targets():
        original = getattr(obj, attr)
        wrapped = _wrap(fault, original, event, idx, is_open)
        if obj is not None and isinstance(obj, type) and attr == "save_pretrained":

            def method(self, *a, _orig=original, **k):
                if a or k:
                    fault("write", os.path.join(os.fspath(a[0] if a else next(iter(k.values()))), "tokenizer"))
                return _orig(self, *a, **k)

            wrapped = method
        setattr(obj, attr, wrapped)
        patched.append((obj, attr, original))
    checkpoints.SAVE_PROBES.append(fault)
    try:
        yield fault
    finally:
        checkpoints.SAVE_PROBES.remove(fault)
        for obj, attr, original in reversed(patched):
            setattr(obj, attr, original)


def main() -> None:
    """``python -m tuning_core.testing.faults ROOT N ACTION HALF -- tuning-core args``: the real CLI, faulted."""
    root, at, action, half = sys.argv[1:5]
    argv = sys.argv[sys.argv.index("--") + 1 :]
    from tuning_core.cli import main as cli_main

    with write_faults(root, int(at), action, half == "1"):
        code = cli_main(argv)
    sys.exit(code)


if __name__ == "__main__":
    main()
