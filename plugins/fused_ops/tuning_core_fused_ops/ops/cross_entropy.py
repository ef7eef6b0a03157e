"""Cross-entropy over a vocabulary, with ``ignore_index``, as Triton kernels and a torch twin.

A program handles one row on a GPU (a tile of rows in the interpreter): an online log-sum-exp (running max and rescaled
sum) walks the vocabulary in blocks, so any vocabulary size is stable and
nothing of size ``[rows, vocab]`` is allocated besides the logits themselves.

Two entry points:

* ``cross_entropy(logits, targets)``: an autograd function, loss summed or
  averaged over non-ignored rows (used on full logits).
* ``loss_and_grad_(logits, targets, grad_scale)``: for the fused linear
  cross-entropy; returns the summed loss of a chunk and overwrites the chunk
  with ``grad_scale * d loss / d logits``, so the chunk buffer is reused.
  With ``softcap`` c the loss is that of ``c * tanh(logits / c)`` (Gemma's final-logit soft-capping),
  and the gradient is taken with respect to the raw logits: ``(softmax - onehot) * (1 - tanh^2)``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import row_block, rows_per_program, triton_runs_on


@triton.jit
def _tile_rows(n_rows, ROWS: tl.constexpr):
    """Row indices of this program (clamped for loads) and which of them are real."""
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    live = rows < n_rows
    return tl.minimum(rows, n_rows - 1), live


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0  # from the sigmoid every Triton backend has


@triton.jit
def _capped(x, cap, SOFTCAP: tl.constexpr):
    if SOFTCAP:
        x = cap * _tanh(x / cap)
    return x


@triton.jit
def _rows_lse(logits_ptr, stride, rows, n_cols, cap, ROWS: tl.constexpr, BLOCK: tl.constexpr, SOFTCAP: tl.constexpr):
    """log(sum(exp(x))) of each (soft-capped) row, in float32, by an online max."""
    m = tl.full((ROWS,), -float("inf"), tl.float32)
    s = tl.zeros((ROWS,), tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(logits_ptr + rows[:, None] * stride + cols[None, :], mask=(cols < n_cols)[None, :], other=0.0).to(
            tl.float32
        )
        x = tl.where((cols < n_cols)[None, :], _capped(x, cap, SOFTCAP), -float("inf"))
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    return m + tl.log(s)


@triton.jit
def _target_logit(logits_ptr, stride, rows, targets, valid, cap, SOFTCAP: tl.constexpr):
    return _capped(tl.load(logits_ptr + rows * stride + tl.where(valid, targets, 0)).to(tl.float32), cap, SOFTCAP)


@triton.jit
def _write_grad(
    logits_ptr,
    stride,
    grad_ptr,
    grad_stride,
    rows,
    live,
    targets,
    lse,
    scale,
    n_cols,
    cap,
    BLOCK: tl.constexpr,
    SOFTCAP: tl.constexpr,
):
    """grad = scale * (softmax(x) - onehot(target)) per row; grad_ptr may be logits_ptr (in place).
    With SOFTCAP, x is cap * tanh(raw / cap) and the gradient is with respect to raw."""
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = live[:, None] & (cols < n_cols)[None, :]
        x = tl.load(logits_ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        if SOFTCAP:
            t = _tanh(x / cap)
            x = cap * t
        p = tl.exp(x - lse[:, None])
        p = tl.where(cols[None, :] == targets[:, None], p - 1.0, p)
        if SOFTCAP:
            p = p * (1.0 - t * t)
        tl.store(
            grad_ptr + rows[:, None] * grad_stride + cols[None, :],
            (p * scale[:, None]).to(grad_ptr.dtype.element_ty),
            mask=mask,
        )


@triton.jit
def _ce_forward_kernel(
    logits_ptr,
    stride,
    targets_ptr,
    loss_ptr,
    lse_ptr,
    n_rows,
    n_cols,
    ignore_index,
    cap,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SOFTCAP: tl.constexpr,
):
    rows, live = _tile_rows(n_rows, ROWS)
    targets = tl.load(targets_ptr + rows)
    valid = targets != ignore_index
    lse = _rows_lse(logits_ptr, stride, rows, n_cols, cap, ROWS, BLOCK, SOFTCAP)
    x_t = _target_logit(logits_ptr, stride, rows, targets, valid, cap, SOFTCAP)
    tl.store(loss_ptr + rows, tl.where(valid, lse - x_t, 0.0), mask=live)
    tl.store(lse_ptr + rows, lse, mask=live)


@triton.jit
def _ce_grad_kernel(
    logits_ptr,
    stride,
    grad_ptr,
    grad_stride,
    targets_ptr,
    lse_ptr,
    scale_ptr,
    n_rows,
    n_cols,
    ignore_index,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """grad = scale * (softmax(x) - onehot(target)); zero on ignored rows."""
    rows, live = _tile_rows(n_rows, ROWS)
    targets = tl.load(targets_ptr + rows)
    lse = tl.load(lse_ptr + rows)
    scale = tl.where(targets != ignore_index, tl.load(scale_ptr).to(tl.float32), 0.0)
    _write_grad(logits_ptr, stride, grad_ptr, grad_stride, rows, live, targets, lse, scale, n_cols, 1.0, BLOCK, False)


@triton.jit
def _ce_loss_grad_inplace_kernel(
    logits_ptr,
    stride,
    targets_ptr,
    loss_ptr,
    n_rows,
    n_cols,
    ignore_index,
    grad_scale,
    cap,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SOFTCAP: tl.constexpr,
):
    """Loss of each row, then the row is overwritten with grad_scale * (softmax - onehot)."""
    rows, live = _tile_rows(n_rows, ROWS)
    targets = tl.load(targets_ptr + rows)
    valid = targets != ignore_index
    lse = _rows_lse(logits_ptr, stride, rows, n_cols, cap, ROWS, BLOCK, SOFTCAP)
    x_t = _target_logit(logits_ptr, stride, rows, targets, valid, cap, SOFTCAP)  # before the row is overwritten
    tl.store(loss_ptr + rows, tl.where(valid, lse - x_t, 0.0), mask=live)
    scale = tl.where(valid, grad_scale, 0.0)
    _write_grad(logits_ptr, stride, logits_ptr, stride, rows, live, targets, lse, scale, n_cols, cap, BLOCK, SOFTCAP)


def _grid(n_rows: int, n_cols: int):
    block = row_block(n_cols)
    rows = rows_per_program(n_rows, block)
    return (triton.cdiv(n_rows, rows),), dict(ROWS=rows, BLOCK=block)


# --- torch twins -----------------------------------------------------------------------------------


def _torch_loss_and_grad_(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    grad_scale: float | None,
    softcap: float | None = None,
) -> torch.Tensor:
    """In place on a float32 chunk: a handful of full passes, no temporary of the chunk's size (with
    ``softcap``, one: the ``1 - tanh^2`` factor of the gradient)."""
    dcap = None
    if softcap:
        logits.div_(softcap).tanh_()
        if grad_scale is not None:
            dcap = 1.0 - logits.square()
        logits.mul_(softcap)
    valid = targets != ignore_index
    safe_t = torch.where(valid, targets, 0).unsqueeze(1)
    row_max = logits.amax(dim=1, keepdim=True)
    x_t = logits.gather(1, safe_t)
    logits.sub_(row_max).exp_()
    sum_exp = logits.sum(dim=1, keepdim=True)
    per_row = (sum_exp.log() + row_max - x_t).squeeze(1)
    loss = torch.where(valid, per_row, 0.0).sum()
    if grad_scale is not None:
        row_scale = torch.where(valid.unsqueeze(1), grad_scale / sum_exp, 0.0)
        logits.mul_(row_scale)
        logits.scatter_add_(1, safe_t, torch.where(valid, -grad_scale, 0.0).unsqueeze(1).to(logits.dtype))
        if dcap is not None:
            logits.mul_(dcap)
    return loss


def loss_and_grad_(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    grad_scale: float | None = None,
    use_triton: bool | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Summed cross-entropy of a 2-D chunk (float32 result); with ``grad_scale`` the chunk becomes its gradient.

    ``softcap`` c: the loss of ``c * tanh(chunk / c)``, its gradient with respect to the chunk itself.
    The torch path computes in float32; a chunk of another dtype goes through a float32 copy.
    """
    if use_triton is None:
        use_triton = triton_runs_on(logits)
    if use_triton:
        assert logits.stride(1) == 1, "rows must be contiguous"
        n_rows, n_cols = logits.shape
        loss = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
        grid, meta = _grid(n_rows, n_cols)
        cap = dict(cap=float(softcap or 1.0), SOFTCAP=bool(softcap))
        if grad_scale is None:
            lse = torch.empty_like(loss)
            _ce_forward_kernel[grid](
                logits, logits.stride(0), targets, loss, lse, n_rows, n_cols, ignore_index, **cap, **meta
            )
        else:
            _ce_loss_grad_inplace_kernel[grid](
                logits, logits.stride(0), targets, loss, n_rows, n_cols, ignore_index, float(grad_scale), **cap, **meta
            )
        return loss.sum()
    if logits.dtype == torch.float32:
        return _torch_loss_and_grad_(logits, targets, ignore_index, grad_scale, softcap)
    work = logits.float()
    loss = _torch_loss_and_grad_(work, targets, ignore_index, grad_scale, softcap)
    if grad_scale is not None:
        logits.copy_(work)
    return loss


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, ignore_index, divisor):
        n_rows, n_cols = logits.shape
        loss = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(loss)
        grid, meta = _grid(n_rows, n_cols)
        _ce_forward_kernel[grid](
            logits, logits.stride(0), targets, loss, lse, n_rows, n_cols, ignore_index, 1.0, SOFTCAP=False, **meta
        )
        ctx.save_for_backward(logits, targets, lse)
        ctx.ignore_index, ctx.divisor = ignore_index, divisor
        return loss.sum() / divisor

    @staticmethod
    def backward(ctx, grad_out):
        logits, targets, lse = ctx.saved_tensors
        n_rows, n_cols = logits.shape
        scale = (grad_out.float() / ctx.divisor).reshape(1)
        grad = torch.empty_like(logits)
        grid, meta = _grid(n_rows, n_cols)
        _ce_grad_kernel[grid](
            logits,
            logits.stride(0),
            grad,
            grad.stride(0),
            targets,
            lse,
            scale,
            n_rows,
            n_cols,
            ctx.ignore_index,
            **meta,
        )
        return grad, None, None, None


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    divisor: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of ``[rows, vocab]`` logits; float32 result.

    ``reduction="mean"`` divides by the number of non-ignored rows (NaN when
    there are none, like torch), ``"sum"`` by ``divisor`` when given (the
    transformers ``num_items_in_batch`` convention) or not at all.
    """
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if reduction == "mean":
        divisor = (targets != ignore_index).sum()
    elif divisor is None:
        divisor = 1.0
    if not triton_runs_on(logits) or logits.shape[0] == 0:
        loss = torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=ignore_index, reduction="sum")
        return loss / divisor
    if torch.is_tensor(divisor):
        divisor = float(divisor)  # one host sync per call; the backward needs the number anyway
    return _CrossEntropy.apply(logits, targets, ignore_index, divisor)
