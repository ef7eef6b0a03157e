"""RMSNorm, in two conventions:

* Llama (``offset`` 0): ``weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype)``;
* Gemma (``offset`` 1): ``(x_f32 * rsqrt(mean(x^2) + eps) * (1 + weight_f32)).to(x.dtype)``, the weight
  stored as an offset from one and the product rounded once, at the end.

The statistic is computed in float32. Backward needs only ``x`` and the
per-row ``rstd`` (eager autograd keeps several row-sized intermediates):

    x_hat = x * rstd,  g = dy * (offset + w)
    dx = rstd * (g - x_hat * mean(g * x_hat)),   dw = sum_rows(dy * x_hat)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, row_block, rows_per_program, triton_runs_on


@triton.jit
def _rms_forward_kernel(
    x_ptr,
    x_stride,
    w_ptr,
    y_ptr,
    y_stride,
    rstd_ptr,
    n_rows,
    n_cols,
    eps,
    offset,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    GEMMA: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    mask = (rows < n_rows)[:, None] & (cols < n_cols)[None, :]
    x_raw = tl.load(x_ptr + rows[:, None] * x_stride + cols[None, :], mask=mask, other=0.0)
    x = x_raw.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=cols < n_cols, other=0.0).to(tl.float32) + offset
    x_hat = x * rstd[:, None]
    if not GEMMA:
        # Llama rounds the normalised row to the input dtype before the weight, as the reference module does.
        x_hat = x_hat.to(x_raw.dtype).to(tl.float32)
    tl.store(
        y_ptr + rows[:, None] * y_stride + cols[None, :], (w[None, :] * x_hat).to(y_ptr.dtype.element_ty), mask=mask
    )
    tl.store(rstd_ptr + rows, rstd, mask=rows < n_rows)


@triton.jit
def _rms_backward_kernel(
    dy_ptr,
    dy_stride,
    x_ptr,
    x_stride,
    w_ptr,
    rstd_ptr,
    dx_ptr,
    dx_stride,
    dw_ptr,
    n_rows,
    n_cols,
    tiles_per_program,
    offset,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Each program walks ``tiles_per_program`` tiles of ROWS rows and writes one partial weight gradient."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    col_mask = cols < n_cols
    w = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(tl.float32) + offset
    dw = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(0, tiles_per_program):
        rows = (pid * tiles_per_program + i).to(tl.int64) * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        mask = row_mask[:, None] & col_mask[None, :]
        x = tl.load(x_ptr + rows[:, None] * x_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + rows[:, None] * dy_stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + rows, mask=row_mask, other=0.0)
        x_hat = x * rstd[:, None]
        g = dy * w[None, :]
        dx = rstd[:, None] * (g - x_hat * (tl.sum(g * x_hat, axis=1) / n_cols)[:, None])
        tl.store(dx_ptr + rows[:, None] * dx_stride + cols[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)
        dw += tl.sum(dy * x_hat, axis=0)
    tl.store(dw_ptr + pid * n_cols + cols, dw, mask=col_mask)


def _backward_programs(n_tiles: int, device: torch.device) -> int:
    if INTERPRETED or device.type != "cuda":
        return 1
    return max(1, min(n_tiles, 4 * torch.cuda.get_device_properties(device).multi_processor_count))


class _TritonRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps, offset):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        n_rows, n_cols = x2.shape
        # Gemma casts the result back to x's dtype; Llama's product promotes to the weight's.
        y_dtype = x.dtype if offset else torch.result_type(weight, x)
        y = torch.empty((n_rows, n_cols), dtype=y_dtype, device=x.device)
        rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
        block = row_block(n_cols, cap=65536)
        rows = rows_per_program(n_rows, block)
        _rms_forward_kernel[(triton.cdiv(n_rows, rows),)](
            x2,
            x2.stride(0),
            weight,
            y,
            y.stride(0),
            rstd,
            n_rows,
            n_cols,
            eps,
            float(offset),
            ROWS=rows,
            BLOCK=block,
            GEMMA=bool(offset),
        )
        ctx.save_for_backward(x2, weight, rstd)
        ctx.shape, ctx.block, ctx.rows, ctx.offset = shape, block, rows, offset
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, rstd = ctx.saved_tensors
        n_rows, n_cols = x2.shape
        dy2 = dy.reshape(n_rows, n_cols)
        if dy2.stride(-1) != 1:
            dy2 = dy2.contiguous()
        dx = torch.empty_like(x2)
        n_tiles = triton.cdiv(n_rows, ctx.rows)
        programs = _backward_programs(n_tiles, x2.device)
        tiles_per_program = triton.cdiv(n_tiles, programs)
        dw_partial = torch.empty((programs, n_cols), dtype=torch.float32, device=x2.device)
        _rms_backward_kernel[(programs,)](
            dy2,
            dy2.stride(0),
            x2,
            x2.stride(0),
            weight,
            rstd,
            dx,
            dx.stride(0),
            dw_partial,
            n_rows,
            n_cols,
            tiles_per_program,
            float(ctx.offset),
            ROWS=ctx.rows,
            BLOCK=ctx.block,
        )
        dw = dw_partial.sum(0).to(weight.dtype) if ctx.needs_input_grad[1] else None
        return dx.reshape(ctx.shape), dw, None, None


class _TorchRMSNorm(torch.autograd.Function):
    """Same maths in torch; saves x and rstd only."""

    @staticmethod
    def forward(ctx, x, weight, eps, offset):
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        if offset:
            y = (xf * rstd * (offset + weight.float())).to(x.dtype)
        else:
            y = weight * (xf * rstd).to(x.dtype)
        ctx.save_for_backward(x, weight, rstd)
        ctx.offset = offset
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        x_hat = x.float() * rstd
        g = dy.float() * (ctx.offset + weight.float())
        dx = rstd * (g - x_hat * (g * x_hat).mean(-1, keepdim=True))
        dw = None
        if ctx.needs_input_grad[1]:
            dw = (dy.float() * x_hat).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
        return dx.to(x.dtype), dw, None, None


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, use_triton: bool | None = None, offset: float = 0.0
) -> torch.Tensor:
    """RMSNorm over the last dimension of ``x``; ``offset`` 1.0 is Gemma's ``(1 + weight)`` convention."""
    if use_triton is None:
        use_triton = triton_runs_on(x)
    fn = _TritonRMSNorm if use_triton and x.numel() else _TorchRMSNorm
    return fn.apply(x, weight, float(eps), float(offset))
