"""SwiGLU activation ``silu(a) * b`` (the Llama MLP's ``act_fn(gate) * up``).

Backward recomputes ``silu(a)`` from the saved inputs instead of keeping it
(eager autograd stores a, silu(a) and b):
    sig = sigmoid(a),  silu = a * sig
    da = g * b * sig * (1 + a * (1 - sig)),   db = g * silu
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, triton_runs_on

BLOCK = 1024


@triton.jit
def _swiglu_forward_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    out = a * tl.sigmoid(a) * b
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_backward_kernel(g_ptr, a_ptr, b_ptr, da_ptr, db_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(a)
    silu = a * sig
    tl.store(da_ptr + offs, (g * b * sig * (1.0 + a * (1.0 - sig))).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (g * silu).to(db_ptr.dtype.element_ty), mask=mask)


def _block(n: int) -> int:
    # The interpreter pays per program, not per element: use few, large programs there.
    return max(BLOCK, triton.next_power_of_2(triton.cdiv(n, 8))) if INTERPRETED else BLOCK


def swiglu_forward(a: torch.Tensor, b: torch.Tensor, use_triton: bool) -> torch.Tensor:
    if not use_triton:
        return torch.nn.functional.silu(a).mul_(b)
    a, b = a.contiguous(), b.contiguous()
    out = torch.empty_like(a)
    n = a.numel()
    block = _block(n)
    _swiglu_forward_kernel[(triton.cdiv(n, block),)](a, b, out, n, BLOCK=block)
    return out


def swiglu_backward(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, use_triton: bool):
    """Gradients of ``silu(a) * b`` with respect to a and b."""
    if not use_triton:
        # aten's silu_backward is the fused g * sig * (1 + a * (1 - sig)); two row-sized temporaries at most.
        da = torch.ops.aten.silu_backward(g * b, a)
        db = torch.nn.functional.silu(a).mul_(g)
        return da, db
    g, a, b = g.contiguous(), a.contiguous(), b.contiguous()
    da, db = torch.empty_like(a), torch.empty_like(b)
    n = a.numel()
    block = _block(n)
    _swiglu_backward_kernel[(triton.cdiv(n, block),)](g, a, b, da, db, n, BLOCK=block)
    return da, db


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, use_triton):
        ctx.save_for_backward(a, b)
        ctx.use_triton = use_triton
        return swiglu_forward(a, b, use_triton)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        da, db = swiglu_backward(g, a, b, ctx.use_triton)
        return da, db, None


def swiglu(a: torch.Tensor, b: torch.Tensor, use_triton: bool | None = None) -> torch.Tensor:
    """``silu(a) * b`` for same-shaped, same-dtype tensors."""
    if use_triton is None:
        use_triton = triton_runs_on(a)
    if a.shape != b.shape or a.dtype != b.dtype:
        return torch.nn.functional.silu(a) * b
    return _SwiGLU.apply(a, b, use_triton)
