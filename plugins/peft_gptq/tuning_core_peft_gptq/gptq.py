"""The GPTQ algorithm for one weight matrix (Frantar et al., 2022).

Columns (input features) are quantized one at a time; each column's rounding
error is spread over the not-yet-quantized columns through the inverse Hessian
of the layer's inputs, so the layer output, not the weight, is what stays close.
Work is done in blocks of columns with the cross-block update applied lazily.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tuning_core_peft_gptq.nibbles import MAXQ


@dataclass
class QuantizedWeight:
    """GPTQ output in checkpoint orientation (before packing)."""

    q: torch.Tensor  # [in, out] int32 in [0, 15]
    scales: torch.Tensor  # [groups, out] float16
    zeros: torch.Tensor  # [groups, out] int32, the true zero points
    g_idx: torch.Tensor  # [in] int32, the group of each input feature
    error: float  # sum of squared output error estimated by GPTQ

    def dequantize(self) -> torch.Tensor:
        """[in, out] float32, what the packed tensors decode to."""
        idx = self.g_idx.long()
        return (self.q - self.zeros[idx]).float() * self.scales.float()[idx]


def group_params(w: torch.Tensor, sym: bool, min_zero: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scale (rounded to float16, as stored) and zero point for the columns of ``w``.

    ``min_zero=1`` keeps asymmetric zero points above 0: the v1 format stores
    zero-1 in 4 bits and cannot hold -1.
    """
    wmin = torch.clamp(w.min(dim=1).values, max=0)
    wmax = torch.clamp(w.max(dim=1).values, min=0)
    if sym:
        wmax = torch.maximum(wmin.abs(), wmax)
        wmin = -wmax
    empty = (wmin == 0) & (wmax == 0)
    wmin, wmax = torch.where(empty, -1.0, wmin), torch.where(empty, 1.0, wmax)
    if sym:
        scale = (wmax - wmin) / MAXQ
        zero = torch.full_like(scale, (MAXQ + 1) // 2)
    else:
        scale = (wmax - wmin) / MAXQ
        zero = torch.round(-wmin / scale)
        if min_zero:  # all-positive rows: spend one level below zero instead of storing zero 0
            low = zero < min_zero
            scale = torch.where(low, wmax / (MAXQ - min_zero), scale)
            zero = torch.where(low, torch.full_like(zero, min_zero), zero)
    scale = scale.half().float()
    scale = torch.where(scale == 0, torch.finfo(torch.float16).tiny, scale)
    return scale, zero


def _fake_quant(col: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.clamp(torch.round(col / scale) + zero, 0, MAXQ)
    return q, scale * (q - zero)


@contextmanager
def _one_thread(device: torch.device):
    # On CPU the column loop is thousands of tiny ops: OpenMP fan-out costs more than it saves, and
    # on a busy machine spinning threads made a 512x512 layer 10x slower (Cholesky included).
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    group_size: int = 128,
    desc_act: bool = False,
    sym: bool = True,
    damp_percent: float = 0.01,
    block_size: int = 128,
    min_zero: int = 0,
) -> QuantizedWeight:
    """Quantize ``weight`` [out, in] given ``hessian`` = 2/n * sum(x x^T) [in, in] of its inputs.

    Runs on the weight's device; the result is on CPU.
    """
    with _one_thread(weight.device):
        return _gptq(weight, hessian.to(weight.device), group_size, desc_act, sym, damp_percent, block_size, min_zero)


def _gptq(weight, hessian, group_size, desc_act, sym, damp_percent, block_size, min_zero) -> QuantizedWeight:
    w = weight.detach().float().clone()
    h = hessian.detach().float().clone()
    n_out, n_in = w.shape
    gs = n_in if group_size == -1 else group_size
    dead = torch.diag(h) == 0  # inputs never seen: their weights cannot matter
    h[dead, dead] = 1
    w[:, dead] = 0
    dev = w.device
    perm = torch.argsort(torch.diag(h), descending=True) if desc_act else torch.arange(n_in, device=dev)
    w, h = w[:, perm], h[perm][:, perm]
    h += damp_percent * torch.mean(torch.diag(h)) * torch.eye(n_in, device=dev)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)

    # Blocks hold whole groups, so each group's range is read from already-updated weights.
    block = max(gs, (block_size // gs) * gs) if gs < n_in else n_in
    n_groups = -(-n_in // gs)
    q = torch.zeros(n_out, n_in, dtype=torch.int32, device=dev)
    scales = torch.zeros(n_groups, n_out, device=dev)
    zeros = torch.zeros(n_groups, n_out, dtype=torch.int32, device=dev)
    total_err = torch.zeros((), device=dev)
    for i1 in range(0, n_in, block):
        i2 = min(i1 + block, n_in)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        total_err += _quantize_block(w1, err1, hinv1, q, scales, zeros, i1, gs, sym, min_zero)
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]

    inv = torch.argsort(perm)
    g_idx = (inv // gs).to(torch.int32)  # original input i sits at position inv[i] in quantization order
    return QuantizedWeight(
        q=q[:, inv].t().contiguous().cpu(),
        scales=scales.half().cpu(),
        zeros=zeros.cpu(),
        g_idx=g_idx.cpu(),
        error=float(total_err),
    )


def _quantize_block(w1, err1, hinv1, q, scales, zeros, i1: int, gs: int, sym: bool, min_zero: int):
    """Quantize the columns of one block in place, spreading each column's error over the later ones."""
    total_err = torch.zeros((), device=w1.device)
    for i in range(w1.shape[1]):
        col = i1 + i
        if col % gs == 0:
            g = col // gs
            scale, zero = group_params(w1[:, i : i + gs], sym, min_zero)
            scales[g], zeros[g] = scale, zero.int()
        qi, deq = _fake_quant(w1[:, i], scale, zero)
        q[:, col] = qi.int()
        d = hinv1[i, i]
        e = (w1[:, i] - deq) / d
        total_err += e.pow(2).sum() / 2
        w1[:, i:] -= e.unsqueeze(1) * hinv1[i, i:].unsqueeze(0)
        err1[:, i] = e
    return total_err
