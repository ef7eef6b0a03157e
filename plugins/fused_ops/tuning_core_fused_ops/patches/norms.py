"""RMSNorm layers -> the fused RMSNorm (same weight parameter, same epsilon)."""

from __future__ import annotations

from ..ops.rms_norm import rms_norm
from .context import PatchContext


def rms_norm_forward(norm, ctx: PatchContext):
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    if eps is None or getattr(norm, "weight", None) is None:
        return None

    def forward(hidden_states):
        return rms_norm(hidden_states, norm.weight, eps, use_triton=ctx.use_triton)

    return forward
