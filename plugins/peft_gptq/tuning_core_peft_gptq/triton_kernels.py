"""Triton dequantize-matmul kernels for 4-bit GPTQ weights (forward and input-gradient).

The 4-bit weights are unpacked inside the kernel, tile by tile, so a float copy
of the weight never exists in memory. Kernels are built on first use and cached
per interpreter mode. With ``TRITON_INTERPRET=1`` set before triton is first
imported (its standard library is jitted at import) they run on CPU tensors,
which is how the tests check them against the torch path.
"""

from __future__ import annotations

import functools
import os

import torch


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.cache
def _kernels(interpret: bool):
    # triton.jit picks the interpreter or the compiler when it wraps the function,
    # so wrap on demand and keep one set per mode.
    import triton

    from tuning_core_peft_gptq import _triton_src

    return triton.jit(_triton_src.fwd_kernel), triton.jit(_triton_src.bwd_kernel)


def _check(x: torch.Tensor) -> None:
    if not x.is_cuda and not _interpreting():
        raise RuntimeError("the Triton GPTQ kernels need a CUDA tensor (or TRITON_INTERPRET=1 for CPU tests)")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"the Triton GPTQ kernels serve float16, bfloat16 and float32, not {x.dtype}")


def _f32_dot(dtype: torch.dtype) -> bool:
    # float32 inputs get an exact (non-TF32) dot. The interpreter's bfloat16 dot is wrong
    # (numpy has no bfloat16), so interpreted bfloat16 runs the dot in float32 too.
    return dtype == torch.float32 or (dtype == torch.bfloat16 and _interpreting())


def _block_m(m: int) -> int:
    return 16 if m <= 16 else 32 if m <= 32 else 64


def matmul(x, qweight, scales, qzeros, g_idx, zero_offset: int) -> torch.Tensor:
    """x [M, K] @ dequant(qweight) [K, N] -> [M, N] in x's dtype."""
    _check(x)
    x = x.contiguous()
    m, k = x.shape
    n = qweight.shape[1]
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    bm, bn, bk = _block_m(m), 64, 32
    fwd, _ = _kernels(_interpreting())
    grid = (triton_cdiv(m, bm), triton_cdiv(n, bn))
    fwd[grid](
        x,
        qweight,
        scales,
        qzeros,
        g_idx,
        out,
        m,
        n,
        k,
        zero_offset,
        x.stride(0),
        out.stride(0),
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_K=bk,
        F32_DOT=_f32_dot(x.dtype),
    )
    return out


def matmul_t(grad, qweight, scales, qzeros, g_idx, zero_offset: int) -> torch.Tensor:
    """grad [M, N] @ dequant(qweight)^T [N, K] -> [M, K] in grad's dtype."""
    _check(grad)
    grad = grad.contiguous()
    m, n = grad.shape
    k = qweight.shape[0] * 8
    out = torch.empty(m, k, dtype=grad.dtype, device=grad.device)
    bm, bn, bk = _block_m(m), 64, 32
    _, bwd = _kernels(_interpreting())
    grid = (triton_cdiv(m, bm), triton_cdiv(k, bk))
    bwd[grid](
        grad,
        qweight,
        scales,
        qzeros,
        g_idx,
        out,
        m,
        n,
        k,
        zero_offset,
        grad.stride(0),
        out.stride(0),
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_K=bk,
        F32_DOT=_f32_dot(grad.dtype),
    )
    return out


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b
