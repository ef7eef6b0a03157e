"""The Llama-style MLP ``down(act(gate(x)) * up(x))`` -> SwiGLU kernel and/or the fused LoRA MLP.

With fused LoRA selected and gate/up/down all LoRA layers that can be fused
in this call (dropout inactive), the whole MLP is one autograd node.
Otherwise the projections run as they are (possibly as fused LoRA linears)
and the activation is the SwiGLU kernel when that is selected.
"""

from __future__ import annotations

from ..ops.lora import lora_mlp
from ..ops.swiglu import swiglu
from .context import PatchContext
from .lora_layers import is_lora_linear, lora_view

_SILU = ("silu", "swish")


def _is_silu(mlp) -> bool:
    act = getattr(getattr(mlp, "config", None), "hidden_act", None)
    return act in _SILU


def mlp_forward(mlp, ctx: PatchContext):
    """Factory; None when the MLP is not a SwiGLU MLP or nothing selected applies to it."""
    if not _is_silu(mlp) or not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return None
    features = ctx.selection.features
    projections = (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    fuse_lora = "lora" in features and all(is_lora_linear(p) for p in projections)
    fast_act = "swiglu" in features
    if not (fuse_lora or fast_act):
        return None
    original = mlp.forward

    def forward(x):
        if fuse_lora:
            views = [lora_view(p) for p in projections]
            if all(v is not None and v.dropout is None for v in views):
                return lora_mlp(x, *[(v.base, v.A, v.B) for v in views], use_triton=ctx.use_triton)
        if not fast_act:
            return original(x)
        return mlp.down_proj(swiglu(mlp.gate_proj(x), mlp.up_proj(x), use_triton=ctx.use_triton))

    forward.description = "fused LoRA MLP (SwiGLU inside)" if fuse_lora else "SwiGLU kernel"
    if fuse_lora and fast_act:
        forward.description += "; SwiGLU kernel when not fused"
    return forward
