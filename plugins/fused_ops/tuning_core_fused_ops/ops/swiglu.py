"""Gated MLP activations ``act(a) * b`` (the MLP's ``act_fn(gate) * up``): SwiGLU (Llama, Qwen, Phi-3) and
GeGLU with the tanh-approximated GELU (Gemma 2/3, ``gelu_pytorch_tanh``).

Backward recomputes ``act(a)`` from the saved inputs instead of keeping it
(eager autograd stores a, act(a) and b):
    silu:      sig = sigmoid(a),  act = a * sig,  act' = sig * (1 + a * (1 - sig))
    gelu_tanh: t = tanh(c * (a + k a^3)),  act = a (1 + t) / 2,  act' = (1 + t) / 2 + a (1 - t^2) c (1 + 3 k a^2) / 2
    da = g * b * act'(a),   db = g * act(a)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, triton_runs_on

BLOCK = 1024
ACTIVATIONS = ("silu", "gelu_tanh")


@triton.jit
def _act_and_grad(a, GELU: tl.constexpr):
    """act(a) and act'(a) in float32."""
    if GELU:
        inner = 0.7978845608028654 * (a + 0.044715 * a * a * a)
        t = 2.0 * tl.sigmoid(2.0 * inner) - 1.0  # tanh, from the sigmoid every Triton backend has
        act = 0.5 * a * (1.0 + t)
        grad = 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * a * a)
    else:
        sig = tl.sigmoid(a)
        act = a * sig
        grad = sig * (1.0 + a * (1.0 - sig))
    return act, grad


@triton.jit
def _swiglu_forward_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr, GELU: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    act, _ = _act_and_grad(a, GELU)
    tl.store(out_ptr + offs, (act * b).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_backward_kernel(g_ptr, a_ptr, b_ptr, da_ptr, db_ptr, n, BLOCK: tl.constexpr, GELU: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    act, act_grad = _act_and_grad(a, GELU)
    tl.store(da_ptr + offs, (g * b * act_grad).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (g * act).to(db_ptr.dtype.element_ty), mask=mask)


def _torch_act(a: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "gelu_tanh":
        return torch.nn.functional.gelu(a, approximate="tanh")
    return torch.nn.functional.silu(a)


def _block(n: int) -> int:
    # The interpreter pays per program, not per element: use few, large programs there.
    return max(BLOCK, triton.next_power_of_2(triton.cdiv(n, 8))) if INTERPRETED else BLOCK


def swiglu_forward(a: torch.Tensor, b: torch.Tensor, use_triton: bool, activation: str = "silu") -> torch.Tensor:
    if not use_triton:
        return _torch_act(a, activation).mul_(b)
    a, b = a.contiguous(), b.contiguous()
    out = torch.empty_like(a)
    n = a.numel()
    block = _block(n)
    _swiglu_forward_kernel[(triton.cdiv(n, block),)](a, b, out, n, BLOCK=block, GELU=activation == "gelu_tanh")
    return out


def swiglu_backward(g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, use_triton: bool, activation: str = "silu"):
    """Gradients of ``act(a) * b`` with respect to a and b."""
    if not use_triton:
        # aten's fused activation backwards; two row-sized temporaries at most.
        if activation == "gelu_tanh":
            da = torch.ops.aten.gelu_backward(g * b, a, approximate="tanh")
        else:
            da = torch.ops.aten.silu_backward(g * b, a)
        db = _torch_act(a, activation).mul_(g)
        return da, db
    g, a, b = g.contiguous(), a.contiguous(), b.contiguous()
    da, db = torch.empty_like(a), torch.empty_like(b)
    n = a.numel()
    block = _block(n)
    _swiglu_backward_kernel[(triton.cdiv(n, block),)](g, a, b, da, db, n, BLOCK=block, GELU=activation == "gelu_tanh")
    return da, db


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, use_triton, activation):
        ctx.save_for_backward(a, b)
        ctx.use_triton, ctx.activation = use_triton, activation
        return swiglu_forward(a, b, use_triton, activation)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        da, db = swiglu_backward(g, a, b, ctx.use_triton, ctx.activation)
        return da, db, None, None


def swiglu(a: torch.Tensor, b: torch.Tensor, use_triton: bool | None = None, activation: str = "silu") -> torch.Tensor:
    """``act(a) * b`` for same-shaped, same-dtype tensors; ``activation`` is "silu" (SwiGLU) or "gelu_tanh"
    (GeGLU with the tanh-approximated GELU)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown gated activation {activation!r}; expected one of {ACTIVATIONS}")
    if use_triton is None:
        use_triton = triton_runs_on(a)
    if a.shape != b.shape or a.dtype != b.dtype:
        return _torch_act(a, activation) * b
    return _SwiGLU.apply(a, b, use_triton, activation)


def geglu(a: torch.Tensor, b: torch.Tensor, use_triton: bool | None = None) -> torch.Tensor:
    """``gelu_tanh(a) * b`` (Gemma's MLP)."""
    return swiglu(a, b, use_triton, "gelu_tanh")
