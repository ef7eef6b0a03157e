"""Expert parallelism for the scatter/gather expert MLP: each rank of a group holds 1/N of the experts.

Per layer: all-gather the group's tokens, top-k indices and router weights; every rank runs its own experts
on all of them (pairs routed to other ranks' experts contribute zero, ``ops.moe.route``); the partial
outputs are summed back onto the rank that owns each token. The collectives are autograd functions, so
the backward runs the mirror image: output gradients are all-gathered, and input and router-weight
gradients summed back to their owners. Only all-gather and all-reduce are used, which gloo (CPU) has;
ranks may hold different numbers of tokens (padded to the largest, pads routed nowhere).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .moe import expert_mlp


def _gather(x, group):
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts)


class _GatherRows(torch.autograd.Function):
    """All ranks' rows (equal counts); the backward sums every rank's gradient of this rank's rows."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group, ctx.rows = group, x.shape[0]
        return _gather(x, group)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        rank = dist.get_rank(ctx.group)
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows], None


class _SumRowsToOwner(torch.autograd.Function):
    """Sum over ranks of the gathered rows, keeping this rank's own rows (a reduce-scatter)."""

    @staticmethod
    def forward(ctx, y, group):
        ctx.group = group
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        y = y.contiguous().clone()
        dist.all_reduce(y, group=group)
        rows = y.shape[0] // world
        return y[rank * rows : (rank + 1) * rows]

    @staticmethod
    def backward(ctx, grad):
        return _gather(grad, ctx.group), None


def _pad(t, rows, value=0):
    if t.shape[0] == rows:
        return t
    return torch.cat([t, t.new_full((rows - t.shape[0], *t.shape[1:]), value)])


def expert_parallel_mlp(
    x, local_gate_up, local_down, top_k_index, top_k_weights, act, group, *, use_triton: bool | None = None
):
    """The expert MLP of this rank's tokens when this rank holds experts [rank * E_local, (rank + 1) * E_local)."""
    rows = x.shape[0]
    sizes = _gather(torch.tensor([rows], device=x.device), group)
    most = int(sizes.max())
    x_all = _GatherRows.apply(_pad(x, most), group)
    w_all = _GatherRows.apply(_pad(top_k_weights, most), group)
    idx_all = _gather(_pad(top_k_index, most, value=-1), group)  # pads go to no expert
    first = dist.get_rank(group) * local_gate_up.shape[0]
    partial = expert_mlp(
        x_all, local_gate_up, local_down, idx_all, w_all, act, use_triton=use_triton, first_expert=first
    )
    return _SumRowsToOwner.apply(partial, group)[:rows]
