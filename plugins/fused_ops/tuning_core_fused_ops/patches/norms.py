"""RMSNorm layers -> the fused RMSNorm (same weight parameter, same epsilon).

``rms_norm``: Llama's convention; ``gemma_rms_norm``: Gemma's ``(1 + weight)`` with the product rounded last.
"""

from __future__ import annotations

from ..ops.rms_norm import rms_norm
from .context import PatchContext


def _factory(offset: float):
    def make(norm, ctx: PatchContext):
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
        if eps is None or getattr(norm, "weight", None) is None:
            return None

        def forward(hidden_states):
            return rms_norm(hidden_states, norm.weight, eps, use_triton=ctx.use_triton, offset=offset)

        return forward

    return make


rms_norm_forward = _factory(0.0)
gemma_rms_norm_forward = _factory(1.0)
