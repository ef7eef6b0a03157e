"""Test helpers for Triton: where the interpreter is used, and proof that a kernel actually launched.

Triton reads TRITON_INTERPRET when a kernel is decorated, so the decision is taken once, by the root
conftest, before any test folder imports a kernel: interpreter only where no NVIDIA GPU exists, so that on
a GPU the ``gpu``-marked tests exercise compiled kernels rather than the interpreter or a torch fallback.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager


def gpu_present() -> bool:
    """An NVIDIA driver is installed (checked without importing torch, which conftest must not do early)."""
    return shutil.which("nvidia-smi") is not None


def use_interpreter_without_gpu(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set TRITON_INTERPRET=1 on machines without a GPU; leave a GPU machine compiling real kernels."""
    if not gpu_present():
        environ.setdefault("TRITON_INTERPRET", "1")


def interpreter_requested(environ: MutableMapping[str, str] = os.environ) -> bool:
    return environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@contextmanager
def count_triton_launches() -> Iterator[Counter]:
    """Count Triton kernel launches by kernel name, compiled or interpreted, inside the block.

    ``kernel[grid](...)`` goes through ``run`` of the kernel object, so wrapping ``run`` on both
    kernel classes sees every launch, autotuned or not.
    """
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    launches: Counter = Counter()
    originals = {cls: cls.run for cls in (JITFunction, InterpretedFunction)}

    def counting(original):
        def run(self, *args, **kwargs):
            if not kwargs.get("warmup", False):
                launches[getattr(self.fn, "__name__", repr(self))] += 1
            return original(self, *args, **kwargs)

        return run

    for cls, original in originals.items():
        cls.run = counting(original)
    try:
        yield launches
    finally:
        for cls, original in originals.items():
            cls.run = original
