"""Rotary position embedding of q and k, one program per token (a tile of tokens in the interpreter).

The kernel reads ``cos``/``sin`` per token, indexed by (batch, position in
the batch row): these rows are what the model's rotary module computed from
``position_ids``, so packed sequences whose positions restart (padding-free
training) are rotated by their own positions, not by their index in the row.
A batch dimension of 1 in ``cos``/``sin`` is broadcast (stride 0).

With half = head_dim / 2, x = [x1, x2], c = [c1, c2], s = [s1, s2]:
    forward:  out1 = x1*c1 - x2*s1          out2 = x2*c2 + x1*s2
    backward: dx1  = g1*c1 + g2*s2          dx2  = g2*c2 - g1*s1
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import rows_per_program, triton_runs_on


@triton.jit
def _rope_kernel(
    x_ptr,
    xs_b,
    xs_h,
    xs_s,
    out_ptr,
    os_b,
    os_h,
    os_s,
    cos_ptr,
    sin_ptr,
    cs_b,
    cs_s,
    n_tokens,
    seq_len,
    n_heads,
    half,
    BACKWARD: tl.constexpr,
    TOKENS: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """A tile of [TOKENS, heads, half] per program (TOKENS is 1 on a GPU)."""
    token = tl.program_id(0).to(tl.int64) * TOKENS + tl.arange(0, TOKENS)
    live = token < n_tokens
    token = tl.minimum(token, n_tokens - 1)
    b = token // seq_len
    s = token % seq_len
    d = tl.arange(0, BLOCK_D)
    heads = tl.arange(0, BLOCK_H)
    d_mask = d < half
    cs_row = (b * cs_b + s * cs_s)[:, None] + d[None, :]  # [TOKENS, BLOCK_D]
    cs_mask = live[:, None] & d_mask[None, :]
    c1 = tl.load(cos_ptr + cs_row, mask=cs_mask, other=0.0).to(tl.float32)[:, None, :]
    c2 = tl.load(cos_ptr + cs_row + half, mask=cs_mask, other=0.0).to(tl.float32)[:, None, :]
    s1 = tl.load(sin_ptr + cs_row, mask=cs_mask, other=0.0).to(tl.float32)[:, None, :]
    s2 = tl.load(sin_ptr + cs_row + half, mask=cs_mask, other=0.0).to(tl.float32)[:, None, :]
    mask = live[:, None, None] & (heads < n_heads)[None, :, None] & d_mask[None, None, :]
    x_off = (b * xs_b + s * xs_s)[:, None, None] + heads[None, :, None] * xs_h + d[None, None, :]
    o_off = (b * os_b + s * os_s)[:, None, None] + heads[None, :, None] * os_h + d[None, None, :]
    x1 = tl.load(x_ptr + x_off, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + x_off + half, mask=mask, other=0.0).to(tl.float32)
    if BACKWARD:
        o1 = x1 * c1 + x2 * s2
        o2 = x2 * c2 - x1 * s1
    else:
        o1 = x1 * c1 - x2 * s1
        o2 = x2 * c2 + x1 * s2
    tl.store(out_ptr + o_off, o1.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_ptr + o_off + half, o2.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: bool) -> torch.Tensor:
    """x: [batch, heads, seq, head_dim] (any strides, last one 1); cos/sin: [batch or 1, seq, head_dim]."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    batch, n_heads, seq_len, head_dim = x.shape
    out = torch.empty_like(x)  # keeps x's (transposed) layout
    cs_b = 0 if cos.shape[0] == 1 else cos.stride(0)
    n_tokens = batch * seq_len
    block_h, block_d = triton.next_power_of_2(n_heads), triton.next_power_of_2(head_dim // 2)
    tokens = rows_per_program(n_tokens, block_h * block_d)
    _rope_kernel[(triton.cdiv(n_tokens, tokens),)](
        x,
        x.stride(0),
        x.stride(1),
        x.stride(2),
        out,
        out.stride(0),
        out.stride(1),
        out.stride(2),
        cos,
        sin,
        cs_b,
        cos.stride(1),
        n_tokens,
        seq_len,
        n_heads,
        head_dim // 2,
        BACKWARD=backward,
        TOKENS=tokens,
        BLOCK_H=block_h,
        BLOCK_D=block_d,
    )
    return out


class _TritonRope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _launch(q, cos, sin, False), _launch(k, cos, sin, False)

    @staticmethod
    def backward(ctx, dq, dk):
        cos, sin = ctx.saved_tensors
        return _launch(dq, cos, sin, True), _launch(dk, cos, sin, True), None, None


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_reference(q, k, cos, sin, unsqueeze_dim: int = 1):
    """The eager formula (also the fallback for layouts the kernel does not take)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def kernel_takes(q, k, cos, sin, unsqueeze_dim) -> bool:
    """Whether the kernel handles this call: HF's [batch, heads, seq, dim] layout and per-token cos/sin."""
    return (
        unsqueeze_dim == 1
        and q.dim() == 4
        and q.numel() > 0
        and k.numel() > 0
        and k.dim() == 4
        and cos.dim() == 3
        and cos.shape == sin.shape
        and cos.stride() == sin.stride()
        and cos.stride(-1) == 1
        and q.shape[-1] % 2 == 0
        and cos.shape[-1] == q.shape[-1]
        and cos.shape[1] == q.shape[2]
        and cos.shape[0] in (1, q.shape[0])
        and k.shape[0] == q.shape[0]
        and k.shape[2] == q.shape[2]
        and k.shape[3] == q.shape[3]
        and not (cos.requires_grad or sin.requires_grad)
    )


def apply_rope(q, k, cos, sin, unsqueeze_dim: int = 1, use_triton: bool | None = None):
    """Drop-in for transformers' ``apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)``."""
    if use_triton is None:
        use_triton = triton_runs_on(q)
    if use_triton and kernel_takes(q, k, cos, sin, unsqueeze_dim):
        return rope_triton(q, k, cos, sin)
    return rope_reference(q, k, cos, sin, unsqueeze_dim)


def rope_triton(q, k, cos, sin):
    """The kernel itself, for inputs ``kernel_takes`` accepted."""
    return _TritonRope.apply(q, k, cos, sin)
