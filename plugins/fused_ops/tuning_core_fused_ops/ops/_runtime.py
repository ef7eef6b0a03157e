"""Where the Triton kernels can run.

Triton decides at decoration time whether a kernel is compiled for a GPU or
run by its CPU interpreter (``TRITON_INTERPRET=1``), so the answer is frozen
when this module is imported, by looking at a probe kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _probe(x_ptr):
    tl.store(x_ptr, 0)


def _decorated_for_interpreter() -> bool:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - every supported triton has it
        return False
    return isinstance(_probe, InterpretedFunction)


INTERPRETED: bool = _decorated_for_interpreter()


def triton_runs_on(t: torch.Tensor) -> bool:
    """True when Triton kernels can take ``t``: a CUDA tensor, or a CPU tensor under the interpreter."""
    if INTERPRETED:
        return t.device.type == "cpu"
    return t.is_cuda


def row_block(n_cols: int, cap: int | None = None) -> int:
    """Power-of-two block covering a row, capped (the interpreter is faster with larger blocks)."""
    cap = cap or (65536 if INTERPRETED else 4096)
    return min(triton.next_power_of_2(max(n_cols, 1)), cap)


# The interpreter pays per program and per operation, hardly per element: it
# gets tiles of many rows; compiled kernels keep one row per program.
INTERPRETER_TILE = 1 << 16


def rows_per_program(n_rows: int, block_cols: int) -> int:
    """Rows one program handles: 1 on a GPU; under the interpreter as many as fit a tile."""
    if not INTERPRETED:
        return 1
    fit = max(1, INTERPRETER_TILE // max(block_cols, 1))
    return min(triton.next_power_of_2(max(n_rows, 1)), 1 << (fit.bit_length() - 1))
