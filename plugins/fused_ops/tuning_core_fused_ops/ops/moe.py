"""Scatter/gather expert MLP (ScatterMoE-style): tokens sorted by expert, all experts in grouped matmuls.

Layout is transformers 5's: ``gate_up_proj`` [E, 2I, H] (gate rows first), ``down_proj`` [E, H, I].
One autograd node covers the whole expert MLP. It keeps the up-projection output (N x 2I, N = tokens x
top-k) and the per-pair expert outputs (N x H); the activation is recomputed in the backward, in row
chunks, with its gradient written over the dead up-projection output; weight gradients are written per
expert straight into one [E, ...] tensor (no per-expert slicing of the 3-D parameters, whose backward
would allocate a full-size zero gradient per expert), and skipped for frozen experts (LoRA elsewhere).

Two implementations of the two primitives:
    gmm    out[r] = a[gather[r]] @ W[e(r)]^T (or W[e(r)]), optionally stored at row scatter[r]
    wgrad  dW[e] = g[rows of e]^T @ a[rows of e] (rows optionally gathered)
torch loops over experts with ``torch.mm`` on contiguous row segments; Triton runs one grouped kernel
(gather and scatter fused into the loads/stores).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, triton_runs_on


@dataclass
class Routing:
    """Token-expert pairs sorted by expert. Pair p is (token p // k, slot p % k) of ``top_k_index``."""

    order: torch.Tensor  # (N,) pair index of each sorted row
    token_of: torch.Tensor  # (N,) token of each sorted row
    counts: list[int]  # rows per expert (local experts only)
    num_tokens: int
    top_k: int
    first_expert: int = 0  # expert-parallel: global id of local expert 0


def route(top_k_index: torch.Tensor, num_experts: int, first_expert: int = 0) -> Routing:
    """Sort the (token, slot) pairs by expert; pairs of experts outside [first, first + num) are dropped."""
    num_tokens, top_k = top_k_index.shape
    flat = top_k_index.reshape(-1)
    if first_expert:
        flat = flat - first_expert
    _, order = torch.sort(flat, stable=True)
    counts = torch.bincount(flat.clamp(-1, num_experts) + 1, minlength=num_experts + 2)
    counts_list = counts.tolist()  # the one host sync: segment bounds drive the per-expert loops
    start = counts_list[0]  # pairs of lower (remote) experts come first
    n_local = sum(counts_list[1 : num_experts + 1])
    order = order[start : start + n_local]
    return Routing(
        order=order,
        token_of=torch.div(order, top_k, rounding_mode="floor"),
        counts=counts_list[1 : num_experts + 1],
        num_tokens=num_tokens,
        top_k=top_k,
        first_expert=first_expert,
    )


# ---------------------------------------------------------------- torch primitives


def _segments(counts):
    start = 0
    for e, n in enumerate(counts):
        if n:
            yield e, start, start + n
        start += n


def gmm_torch(a, w, counts, *, gather=None, scatter=None, accumulate=False, transpose=False, out_rows=None):
    """Rows of expert e: a[rows] @ w[e]^T (transpose=False, w [E, out, in]) or a[rows] @ w[e] (w [E, in, out]).

    ``gather``: input row of each sorted row. ``scatter``: output row of each sorted row (an ``out_rows``-row
    output, zero where nothing lands); ``accumulate`` adds rows landing on the same output row. Gathers and
    scatters go one expert segment at a time, so no gathered copy of the whole input is ever held.
    """
    n_out = w.shape[2] if transpose else w.shape[1]
    rows = sum(counts)
    if scatter is None or (rows == out_rows and not accumulate):
        out = a.new_empty(rows if scatter is None else out_rows, n_out)  # every row gets written
    else:
        out = a.new_zeros(out_rows, n_out)
    for e, s, t in _segments(counts):
        seg = a.index_select(0, gather[s:t]) if gather is not None else a[s:t]
        weight = w[e] if transpose else w[e].t()
        if scatter is None:
            torch.mm(seg, weight, out=out[s:t])
        elif accumulate:
            out.index_add_(0, scatter[s:t], torch.mm(seg, weight))
        else:
            out.index_copy_(0, scatter[s:t], torch.mm(seg, weight))
    return out


def wgrad_torch(g, a, counts, num_experts, *, gather_g=None, gather_a=None):
    """dW[e] = g[rows of e]^T @ a[rows of e], for every expert (zeros for experts without rows)."""
    out = g.new_empty(num_experts, g.shape[1], a.shape[1])
    for e, n in enumerate(counts):
        if not n:
            out[e].zero_()  # an expert no row reached
    for e, s, t in _segments(counts):
        g_seg = g.index_select(0, gather_g[s:t]) if gather_g is not None else g[s:t]
        a_seg = a.index_select(0, gather_a[s:t]) if gather_a is not None else a[s:t]
        torch.mm(g_seg.t(), a_seg, out=out[e])
    return out


# ---------------------------------------------------------------- Triton primitives


@triton.jit
def _gmm_kernel(
    a_ptr,
    w_ptr,
    out_ptr,
    gather_ptr,
    scatter_ptr,
    blk_expert_ptr,
    blk_start_ptr,
    blk_end_ptr,
    N_OUT,
    K,
    stride_am,
    stride_ak,
    stride_we,
    stride_wn,
    stride_wk,
    stride_om,
    stride_on,
    HAS_GATHER: tl.constexpr,
    HAS_SCATTER: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    blk = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(blk_expert_ptr + blk)
    start = tl.load(blk_start_ptr + blk)
    end = tl.load(blk_end_ptr + blk)
    rows = start + tl.arange(0, BLOCK_M)
    row_ok = rows < end
    if HAS_GATHER:
        in_rows = tl.load(gather_ptr + rows, mask=row_ok, other=0)
    else:
        in_rows = rows
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < N_OUT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        a = tl.load(
            a_ptr + in_rows[:, None].to(tl.int64) * stride_am + ks[None, :] * stride_ak,
            mask=row_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        w = tl.load(
            w_ptr + e.to(tl.int64) * stride_we + ks[:, None] * stride_wk + cols[None, :] * stride_wn,
            mask=k_ok[:, None] & col_ok[None, :],
            other=0.0,
        )
        acc += tl.dot(a, w)
    if HAS_SCATTER:
        out_rows = tl.load(scatter_ptr + rows, mask=row_ok, other=0)
    else:
        out_rows = rows
    tl.store(
        out_ptr + out_rows[:, None].to(tl.int64) * stride_om + cols[None, :] * stride_on,
        acc.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


@triton.jit
def _wgrad_kernel(
    g_ptr,
    a_ptr,
    out_ptr,
    gather_g_ptr,
    gather_a_ptr,
    seg_start_ptr,
    seg_end_ptr,
    N,
    K,
    stride_gm,
    stride_gn,
    stride_am,
    stride_ak,
    stride_oe,
    stride_on,
    stride_ok,
    HAS_GATHER_G: tl.constexpr,
    HAS_GATHER_A: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    e = tl.program_id(0)
    ns = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.program_id(2) * BLOCK_K + tl.arange(0, BLOCK_K)
    n_ok = ns < N
    k_ok = ks < K
    start = tl.load(seg_start_ptr + e)
    end = tl.load(seg_end_ptr + e)
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for m0 in range(start, end, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        if HAS_GATHER_G:
            g_rows = tl.load(gather_g_ptr + rows, mask=row_ok, other=0)
        else:
            g_rows = rows
        if HAS_GATHER_A:
            a_rows = tl.load(gather_a_ptr + rows, mask=row_ok, other=0)
        else:
            a_rows = rows
        g = tl.load(
            g_ptr + g_rows[None, :].to(tl.int64) * stride_gm + ns[:, None] * stride_gn,
            mask=row_ok[None, :] & n_ok[:, None],
            other=0.0,
        )  # (BLOCK_N, BLOCK_M): g^T
        a = tl.load(
            a_ptr + a_rows[:, None].to(tl.int64) * stride_am + ks[None, :] * stride_ak,
            mask=row_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        acc += tl.dot(g, a)
    tl.store(
        out_ptr + e * stride_oe + ns[:, None] * stride_on + ks[None, :] * stride_ok,
        acc.to(out_ptr.dtype.element_ty),
        mask=n_ok[:, None] & k_ok[None, :],
    )


def _blocks(n, cap):
    return max(16, min(cap, triton.next_power_of_2(max(n, 1))))


def _block_table(counts, block_m, device):
    experts, starts, ends = [], [], []
    for e, s, t in _segments(counts):
        for b in range(s, t, block_m):
            experts.append(e)
            starts.append(b)
            ends.append(t)
    table = torch.tensor([experts, starts, ends], dtype=torch.int32, device=device)
    return table[0], table[1], table[2]


def gmm_triton(a, w, counts, *, gather=None, scatter=None, accumulate=False, transpose=False, out_rows=None):
    if accumulate:  # rows of several experts land on one output row: reduce outside the kernel
        return a.new_zeros(out_rows, w.shape[2] if transpose else w.shape[1]).index_add_(
            0, scatter, gmm_triton(a, w, counts, gather=gather, transpose=transpose)
        )
    rows = sum(counts)
    n_out, k = (w.shape[2], w.shape[1]) if transpose else (w.shape[1], w.shape[2])
    out = a.new_empty(rows, n_out) if scatter is None else a.new_zeros(out_rows, n_out)
    if rows == 0:
        return out.zero_()
    # (w_n, w_k) strides of W[e] seen as [out, in]
    stride_wn, stride_wk = (w.stride(2), w.stride(1)) if transpose else (w.stride(1), w.stride(2))
    cap = 64 if INTERPRETED else 128
    block_m, block_n, block_k = _blocks(max(counts), cap), _blocks(n_out, cap), _blocks(k, 64 if INTERPRETED else 32)
    blk_e, blk_s, blk_t = _block_table(counts, block_m, a.device)
    grid = (blk_e.numel(), triton.cdiv(n_out, block_n))
    dummy = blk_e
    _gmm_kernel[grid](
        a,
        w,
        out,
        gather if gather is not None else dummy,
        scatter if scatter is not None else dummy,
        blk_e,
        blk_s,
        blk_t,
        n_out,
        k,
        a.stride(0),
        a.stride(1),
        w.stride(0),
        stride_wn,
        stride_wk,
        out.stride(0),
        out.stride(1),
        HAS_GATHER=gather is not None,
        HAS_SCATTER=scatter is not None,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
    return out


def wgrad_triton(g, a, counts, num_experts, *, gather_g=None, gather_a=None):
    n, k = g.shape[1], a.shape[1]
    out = g.new_empty(num_experts, n, k)
    bounds = torch.tensor([0] + counts, dtype=torch.int64).cumsum(0).to(torch.int32).to(g.device)
    cap = 64
    block_m = _blocks(max(counts) if counts else 1, 64 if INTERPRETED else 32)
    block_n, block_k = _blocks(n, cap), _blocks(k, cap)
    grid = (num_experts, triton.cdiv(n, block_n), triton.cdiv(k, block_k))
    dummy = bounds
    _wgrad_kernel[grid](
        g,
        a,
        out,
        gather_g if gather_g is not None else dummy,
        gather_a if gather_a is not None else dummy,
        bounds[:-1],
        bounds[1:],
        n,
        k,
        g.stride(0),
        g.stride(1),
        a.stride(0),
        a.stride(1),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        HAS_GATHER_G=gather_g is not None,
        HAS_GATHER_A=gather_a is not None,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
    return out


# ---------------------------------------------------------------- the expert MLP


def _is_silu(act) -> bool:
    return isinstance(act, torch.nn.SiLU) or type(act).__name__ in ("SiLUActivation", "SiLU")


def _glu(h, act, chunks: int = 8):
    """act(gate) * up in row chunks (one [N, I] output, small temporaries)."""
    n, i = h.shape[0], h.shape[1] // 2
    a = h.new_empty(n, i)
    step = max(1, -(-n // chunks))
    for s in range(0, n, step):
        torch.mul(act(h[s : s + step, :i]), h[s : s + step, i:], out=a[s : s + step])
    return a


def _glu_backward_(h, g_a, act, chunks: int = 8):
    """Returns act(gate) * up; overwrites h = [gate, up] with its gradient [d gate, d up].

    h is dead after this, so its storage takes the gradient, and the work goes in row chunks: the
    temporaries are 1/chunks of an [N, I] tensor instead of several full ones (the backward's peak).
    """
    n, i = h.shape[0], h.shape[1] // 2
    a = h.new_empty(n, i)
    step = max(1, -(-n // chunks))
    for s in range(0, n, step):
        gate, up, g = h[s : s + step, :i], h[s : s + step, i:], g_a[s : s + step]
        if _is_silu(act):
            sig = torch.sigmoid(gate)
            act_gate = gate * sig
            torch.mul(act_gate, up, out=a[s : s + step])
            # silu'(gate) = sig * (1 + gate * (1 - sig))
            d_gate = torch.rsub(sig, 1).mul_(gate).add_(1).mul_(sig).mul_(up).mul_(g)
            up.copy_(act_gate.mul_(g))
            gate.copy_(d_gate)
        else:
            with torch.enable_grad():
                gate_, up_ = gate.detach().requires_grad_(), up.detach().requires_grad_()
                out = act(gate_) * up_
                d_gate, d_up = torch.autograd.grad(out, (gate_, up_), g)
            a[s : s + step] = out.detach()
            gate.copy_(d_gate)
            up.copy_(d_up)
    return a, h


class _ExpertMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gate_up, down, weights, routing: Routing, act, use_triton: bool):
        gmm = gmm_triton if use_triton else gmm_torch
        t, k = routing.num_tokens, routing.top_k
        h = gmm(x, gate_up, routing.counts, gather=routing.token_of)  # (N, 2I), sorted by expert
        y_pairs = gmm(_glu(h, act), down, routing.counts, scatter=routing.order, out_rows=t * k)  # (T*k, H)
        out = torch.bmm(weights.to(y_pairs.dtype).unsqueeze(1), y_pairs.view(t, k, -1)).squeeze(1)
        ctx.save_for_backward(x, gate_up, down, weights)
        # Intermediates (neither inputs nor outputs) live on ctx so the backward can free them as it goes.
        ctx.h, ctx.y_pairs = h, y_pairs
        ctx.routing, ctx.act, ctx.use_triton = routing, act, use_triton
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, gate_up, down, weights = ctx.saved_tensors
        h, y_pairs = ctx.h, ctx.y_pairs
        del ctx.h, ctx.y_pairs
        r, act = ctx.routing, ctx.act
        gmm, wgrad = (gmm_triton, wgrad_triton) if ctx.use_triton else (gmm_torch, wgrad_torch)
        t, k, e = r.num_tokens, r.top_k, gate_up.shape[0]
        grad_out = grad_out.contiguous()
        need_x, need_gate_up, need_down, need_w = ctx.needs_input_grad[:4]
        grad_w = None
        if need_w:
            grad_w = torch.bmm(y_pairs.view(t, k, -1), grad_out.unsqueeze(-1)).squeeze(-1).to(weights.dtype)
        del y_pairs
        # gradient at each sorted row's expert output: its token's output gradient times its router weight
        w_sorted = weights.reshape(-1).index_select(0, r.order).to(grad_out.dtype)
        g_y = grad_out.index_select(0, r.token_of).mul_(w_sorted.unsqueeze(-1))  # (N, H)
        g_a = gmm(g_y, down, r.counts, transpose=True)  # (N, I)
        a, g_h = _glu_backward_(h, g_a, act)  # g_h is h's storage
        del g_a, h
        grad_down = wgrad(g_y, a, r.counts, e) if need_down else None  # (E, H, I)
        del a, g_y
        grad_gate_up = wgrad(g_h, x, r.counts, e, gather_a=r.token_of) if need_gate_up else None  # (E, 2I, H)
        grad_x = None
        if need_x:
            grad_x = gmm(g_h, gate_up, r.counts, transpose=True, scatter=r.token_of, accumulate=True, out_rows=t).to(
                x.dtype
            )
        return grad_x, grad_gate_up, grad_down, grad_w, None, None, None


def expert_mlp(
    x, gate_up, down, top_k_index, top_k_weights, act, *, use_triton: bool | None = None, first_expert: int = 0
):
    """sum_k w[t, k] * down[e] @ act_glu(gate_up[e] @ x[t]) with e = top_k_index[t, k]; x is (tokens, H).

    ``use_triton`` None: Triton when it can run on ``x``. Expert-parallel callers pass their local slice
    of the weights and ``first_expert``; pairs routed elsewhere contribute nothing here.
    """
    if use_triton is None:
        use_triton = triton_runs_on(x)
    routing = route(top_k_index, gate_up.shape[0], first_expert)
    device = x.device.type
    if torch.is_autocast_enabled(device):
        # As autocast would run the matmuls: in its dtype (the casts are autograd ops, so gradients come
        # back in the parameters' own dtype); the kernels then run with autocast off.
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return _ExpertMLP.apply(
                x.to(dtype).contiguous(),
                gate_up.to(dtype),
                down.to(dtype),
                top_k_weights,
                routing,
                act,
                bool(use_triton),
            )
    return _ExpertMLP.apply(
        x.to(gate_up.dtype).contiguous(), gate_up, down, top_k_weights, routing, act, bool(use_triton)
    )
