"""Fused linear cross-entropy: ``loss(softcap(hidden @ weight.T * scale), targets)`` without the full logits.

The rows that carry a target are gathered once (ignored rows cost nothing),
then processed in chunks: one chunk of logits lives at a time, its gradient
overwrites it in place (Triton kernel or torch twin, see ``cross_entropy``),
and the gradients of ``hidden`` and ``weight`` are accumulated right away.
The gradients are therefore computed during the forward pass and only
rescaled by the incoming gradient in backward; peak memory is the gradients
themselves plus one chunk.
"""

from __future__ import annotations

import torch

from ._runtime import triton_runs_on
from .cross_entropy import loss_and_grad_

# A chunk's logits may take at most this fraction of the lm_head weight's size: when the weight is
# trained its gradient is the one buffer we cannot avoid, so peak memory stays near 1.4x that.
# Larger chunks run the matmuls faster on CPU (fewer passes over the weight), so the budget is used fully.
CHUNK_BUDGET_FRACTION = 0.4
ROW_MULTIPLE = 64  # matmul-friendly row counts once the budget allows them
MIN_CHUNK_ROWS = 16


def default_chunk_rows(n_rows: int, hidden_size: int, vocab_size: int) -> int:
    """Rows per chunk: the chunk's logits (rows x vocab) stay within CHUNK_BUDGET_FRACTION of the weight
    (vocab x hidden), i.e. rows <= fraction * hidden; at least MIN_CHUNK_ROWS, at most n_rows."""
    rows = int(CHUNK_BUDGET_FRACTION * hidden_size)
    if rows >= ROW_MULTIPLE:
        rows -= rows % ROW_MULTIPLE
    return max(1, min(max(rows, MIN_CHUNK_ROWS), n_rows))


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index, divisor, logit_scale, chunk_rows, use_triton, softcap):
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        want_grad = want_h or want_w
        rows = (targets != ignore_index).nonzero().squeeze(1)
        h = hidden.index_select(0, rows)
        t = targets.index_select(0, rows)
        n = h.shape[0]
        if divisor is None:
            divisor = n
        elif torch.is_tensor(divisor):
            divisor = float(divisor)  # the gradient scale is needed on the host once per step
        grad_scale = (1.0 / divisor) if (want_grad and divisor) else 0.0

        grad_h = torch.empty_like(h) if want_h else None
        # Written by the first chunk, accumulated by the others (no zero-fill pass over a vocab x hidden buffer).
        grad_w = torch.empty_like(weight) if want_w else None
        loss_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        chunk_rows = chunk_rows or default_chunk_rows(n, weight.shape[1], weight.shape[0])
        buf = torch.empty((min(chunk_rows, n), weight.shape[0]), dtype=hidden.dtype, device=hidden.device)
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            hc = h[start:stop]
            if logit_scale != 1.0:
                hc = hc * logit_scale  # (h*s) W^T == (h W^T) * s; the weight gradient then uses h*s directly
            logits = buf[: stop - start]
            torch.mm(hc, weight.t(), out=logits)
            loss_sum += loss_and_grad_(
                logits, t[start:stop], ignore_index, grad_scale if want_grad else None, use_triton, softcap
            )
            if want_h:
                torch.mm(logits, weight, out=grad_h[start:stop])
                if logit_scale != 1.0:
                    grad_h[start:stop].mul_(logit_scale)
            if want_w:
                if start == 0:
                    torch.mm(logits.t(), hc, out=grad_w)
                else:
                    grad_w.addmm_(logits.t(), hc)
        del buf
        if want_w and n == 0:
            grad_w.zero_()

        if want_h:
            full = torch.zeros_like(hidden)
            full.index_copy_(0, rows, grad_h)
            grad_h = full
        ctx.save_for_backward(grad_h, grad_w)
        return loss_sum / divisor  # no targets and no divisor: 0/0 = NaN, like torch's mean

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        # The stored gradients are consumed here (scaled in place), so a second backward is not supported.
        if grad_h is not None:
            grad_h = grad_h.mul_(grad_loss.to(grad_h.dtype))
        if grad_w is not None:
            grad_w = grad_w.mul_(grad_loss.to(grad_w.dtype))
        return grad_h, grad_w, None, None, None, None, None, None, None


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    divisor: float | torch.Tensor | None = None,
    logit_scale: float = 1.0,
    chunk_rows: int | None = None,
    use_triton: bool | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Cross-entropy of ``(hidden @ weight.T) * logit_scale`` against ``targets`` (float32 scalar).

    ``softcap`` c soft-caps the logits inside each chunk, ``c * tanh(logits / c)`` (Gemma 2/3's
    ``final_logit_softcapping``); None or 0 leaves them as they are.

    ``hidden`` is ``[rows, hidden_size]``, ``weight`` is ``[vocab, hidden_size]``.
    ``divisor`` None averages over non-ignored rows; otherwise the summed loss
    is divided by it (transformers' ``num_items_in_batch``). ``use_triton``
    None picks the Triton kernel when it can run on these tensors.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or targets.dim() != 1:
        raise ValueError("fused_linear_cross_entropy wants hidden [rows, h], weight [vocab, h], targets [rows]")
    if use_triton is None:
        use_triton = triton_runs_on(hidden)
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        # Mixed precision: run the chunks in the autocast dtype, as the lm_head would; autograd casts the
        # gradients back to the inputs' dtypes. Autocast itself stays off inside (it ignores out= matmuls).
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    with torch.autocast(device_type, enabled=False):
        return _FusedLinearCrossEntropy.apply(
            hidden,
            weight,
            targets,
            ignore_index,
            divisor,
            float(logit_scale),
            chunk_rows,
            use_triton,
            float(softcap) if softcap else None,
        )
