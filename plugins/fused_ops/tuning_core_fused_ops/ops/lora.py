"""Fused LoRA projections: ``y = x W^T + b + s * (drop(x) A^T) B^T`` as single autograd nodes.

The base projection is frozen and reached through two callables, its
forward (``x W^T + b``) and its input gradient (``dy W``), so a quantized base
runs its own (dequantizing) matmuls in both passes instead of being kept
dense. Only ``x`` (and the small ``[rows, r]`` activations ``x A^T``) are
saved; the gradients of A and B are computed here.

Three shapes, as in the Llama family:

* ``lora_linear``: one projection (o_proj, or any other LoRA layer);
* ``lora_shared_input``: several projections of the same input (q, k, v):
  the input is saved once and its gradient accumulated in one buffer;
* ``lora_mlp``: gate/up/down with the SwiGLU (or GeGLU) in between; ``act(g) * u``
  is recomputed in backward rather than stored (needs LoRA dropout 0). Phi-3's
  fused ``gate_up_proj`` is one projection whose output halves are gate and up.

Dtypes follow PEFT: the adapter runs in the adapter weights' dtype (often
float32 over a bf16 base) and the sum is cast back to the base's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .swiglu import swiglu_backward, swiglu_forward


@dataclass(frozen=True)
class BaseProjection:
    """The frozen part of a LoRA projection and the adapter's scaling.

    ``forward(x)`` is ``x W^T + b``; ``input_grad(dy)`` is ``dy W``; both on 2-D inputs.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    input_grad: Callable[[torch.Tensor], torch.Tensor]
    scaling: float

    @classmethod
    def dense(cls, weight: torch.Tensor, bias: torch.Tensor | None, scaling: float) -> BaseProjection:
        return cls(lambda x: F.linear(x, weight, bias), lambda dy: dy @ weight.to(dy.dtype), scaling)


def _forward_one(x, x_lora, base: BaseProjection, A, B):
    y = base.forward(x)
    xa = x_lora.to(A.dtype) @ A.t()
    out = (y + (xa @ B.t()) * base.scaling).to(y.dtype)
    return out, xa


def _backward_one(dy, x_lora, xa, base: BaseProjection, A, B, want_A, want_B, shared: bool):
    """Returns (dx, dx_lora, dA, dB). With ``shared`` (x_lora is x) the LoRA part is added into dx in place
    and dx_lora is None."""
    dyl = dy.to(B.dtype)
    dB = (dyl.t() @ xa).mul_(base.scaling) if want_B else None
    dyB = (dyl @ B).mul_(base.scaling)
    dA = dyB.t() @ x_lora.to(A.dtype) if want_A else None
    dx = base.input_grad(dy)
    if shared:
        dx.addmm_(dyB.to(dx.dtype), A.to(dx.dtype))
        return dx, None, dA, dB
    return dx, dyB @ A, dA, dB


class _LoraSharedInput(torch.autograd.Function):
    """Any number of LoRA projections of one input; flat args: x, bases, then (x_lora, A, B) per projection."""

    @staticmethod
    def forward(ctx, x, bases, *flat):
        outs, saved = [], [x]
        for i, base in enumerate(bases):
            x_lora, A, B = flat[3 * i : 3 * i + 3]
            out, xa = _forward_one(x, x_lora, base, A, B)
            outs.append(out)
            saved += [x_lora if x_lora is not x else None, A, B, xa]
        ctx.bases = bases
        ctx.save_for_backward(*saved)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *douts):
        saved = ctx.saved_tensors
        x = saved[0]
        dx = None
        grads = []
        for i, base in enumerate(ctx.bases):
            x_lora, A, B, xa = saved[1 + 4 * i : 5 + 4 * i]
            shared = x_lora is None
            x_lora = x if shared else x_lora
            want_A, want_B = ctx.needs_input_grad[3 + 3 * i], ctx.needs_input_grad[4 + 3 * i]
            if douts[i] is None:
                grads += [None, None, None]
                continue
            dxi, dx_lora, dA, dB = _backward_one(douts[i], x_lora, xa, base, A, B, want_A, want_B, shared)
            dx = dxi if dx is None else dx.add_(dxi)
            grads += [dx_lora, dA, dB]
        return (dx, None, *grads)


def lora_shared_input(x: torch.Tensor, projections) -> tuple[torch.Tensor, ...]:
    """``projections``: sequence of (BaseProjection, x_lora, A, B); x_lora is ``x`` when there is no dropout."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    bases, flat = [], []
    for base, x_lora, A, B in projections:
        bases.append(base)
        flat += [x2 if x_lora is x else x_lora.reshape(-1, shape[-1]), A, B]
    outs = _LoraSharedInput.apply(x2, tuple(bases), *flat)
    return tuple(o.reshape(*shape[:-1], o.shape[-1]) for o in outs)


def lora_linear(
    x: torch.Tensor, base: BaseProjection, x_lora: torch.Tensor, A: torch.Tensor, B: torch.Tensor
) -> torch.Tensor:
    """One LoRA projection (``x_lora`` is ``x`` or ``dropout(x)``)."""
    return lora_shared_input(x, [(base, x_lora, A, B)])[0]


class _LoraMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bases, use_triton, activation, Ag, Bg, Au, Bu, Ad, Bd):
        gate_b, up_b, down_b = bases
        g, xa_g = _forward_one(x, x, gate_b, Ag, Bg)
        u, xa_u = _forward_one(x, x, up_b, Au, Bu)
        h = swiglu_forward(g, u, use_triton, activation)
        y, ha = _forward_one(h, h, down_b, Ad, Bd)
        ctx.save_for_backward(x, g, u, xa_g, xa_u, ha, Ag, Bg, Au, Bu, Ad, Bd)
        ctx.bases, ctx.use_triton, ctx.activation = bases, use_triton, activation
        return y

    @staticmethod
    def backward(ctx, dy):
        x, g, u, xa_g, xa_u, ha, Ag, Bg, Au, Bu, Ad, Bd = ctx.saved_tensors
        gate_b, up_b, down_b = ctx.bases
        need = ctx.needs_input_grad
        h = swiglu_forward(g, u, ctx.use_triton, ctx.activation)  # recomputed, not stored
        dh, _, dAd, dBd = _backward_one(dy, h, ha, down_b, Ad, Bd, need[8], need[9], shared=True)
        del h
        dg, du = swiglu_backward(dh, g, u, ctx.use_triton, ctx.activation)
        del dh
        dx, _, dAg, dBg = _backward_one(dg, x, xa_g, gate_b, Ag, Bg, need[4], need[5], shared=True)
        del dg
        dxu, _, dAu, dBu = _backward_one(du, x, xa_u, up_b, Au, Bu, need[6], need[7], shared=True)
        dx.add_(dxu)
        return dx, None, None, None, dAg, dBg, dAu, dBu, dAd, dBd


class _LoraFusedGateUpMLP(torch.autograd.Function):
    """Phi-3: ``gate_up`` is one LoRA projection; its output's first half is the gate, the second the up."""

    @staticmethod
    def forward(ctx, x, bases, use_triton, activation, Agu, Bgu, Ad, Bd):
        gate_up_b, down_b = bases
        gu, xa_gu = _forward_one(x, x, gate_up_b, Agu, Bgu)
        g, u = gu.chunk(2, dim=-1)
        h = swiglu_forward(g, u, use_triton, activation)
        y, ha = _forward_one(h, h, down_b, Ad, Bd)
        ctx.save_for_backward(x, gu, xa_gu, ha, Agu, Bgu, Ad, Bd)
        ctx.bases, ctx.use_triton, ctx.activation = bases, use_triton, activation
        return y

    @staticmethod
    def backward(ctx, dy):
        x, gu, xa_gu, ha, Agu, Bgu, Ad, Bd = ctx.saved_tensors
        gate_up_b, down_b = ctx.bases
        need = ctx.needs_input_grad
        g, u = gu.chunk(2, dim=-1)
        h = swiglu_forward(g, u, ctx.use_triton, ctx.activation)
        dh, _, dAd, dBd = _backward_one(dy, h, ha, down_b, Ad, Bd, need[6], need[7], shared=True)
        del h
        dgu = torch.cat(swiglu_backward(dh, g, u, ctx.use_triton, ctx.activation), dim=-1)
        del dh
        dx, _, dAgu, dBgu = _backward_one(dgu, x, xa_gu, gate_up_b, Agu, Bgu, need[4], need[5], shared=True)
        return dx, None, None, None, dAgu, dBgu, dAd, dBd


def lora_mlp(x: torch.Tensor, gate, up, down, use_triton: bool, activation: str = "silu") -> torch.Tensor:
    """``down(act(gate(x)) * up(x))`` with LoRA on all three; each argument is (BaseProjection, A, B).
    ``up`` None: ``gate`` is a fused gate/up projection (Phi-3's ``gate_up_proj``)."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    (gb, Ag, Bg), (db, Ad, Bd) = gate, down
    if up is None:
        y = _LoraFusedGateUpMLP.apply(x2, (gb, db), use_triton, activation, Ag, Bg, Ad, Bd)
    else:
        ub, Au, Bu = up
        y = _LoraMLP.apply(x2, (gb, ub, db), use_triton, activation, Ag, Bg, Au, Bu, Ad, Bd)
    return y.reshape(*shape[:-1], y.shape[-1])
