"""Gated MLPs ``down(act(gate(x)) * up(x))`` -> the SwiGLU/GeGLU kernel and/or the fused LoRA MLP.

Two layouts: separate ``gate_proj``/``up_proj`` (Llama, Qwen, Gemma), or
one ``gate_up_proj`` whose output halves are gate and up (Phi-3). The
activation is SiLU (SwiGLU) or the tanh-approximated GELU (Gemma's GeGLU).

With fused LoRA selected and every projection a LoRA layer that can be fused
in this call (dropout inactive), the whole MLP is one autograd node.
Otherwise the projections run as they are (possibly as fused LoRA linears)
and the activation is the kernel when that is selected.
"""

from __future__ import annotations

from ..ops.lora import lora_mlp
from ..ops.swiglu import swiglu
from .context import PatchContext
from .lora_layers import is_lora_linear, lora_view

# transformers' activation names (config.hidden_act, or Gemma's config.hidden_activation) -> our kernel's
ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh"}
_KERNEL_NAMES = {"silu": "SwiGLU", "gelu_tanh": "GeGLU"}


def activation_of(mlp) -> str | None:
    config = getattr(mlp, "config", None)
    name = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
    return ACTIVATIONS.get(name) if isinstance(name, str) else None


def _projections(mlp):
    """(gate, up or None, down): up None means gate is the fused gate/up projection; None if neither layout."""
    if all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return mlp.gate_proj, mlp.up_proj, mlp.down_proj
    if all(hasattr(mlp, n) for n in ("gate_up_proj", "down_proj")):
        return mlp.gate_up_proj, None, mlp.down_proj
    return None


def mlp_forward(mlp, ctx: PatchContext):
    """Factory; None when the MLP is not a gated MLP we know or nothing selected applies to it."""
    activation, projections = activation_of(mlp), _projections(mlp)
    if activation is None or projections is None:
        return None
    gate, up, down = projections
    present = [p for p in projections if p is not None]
    features = ctx.selection.features
    fuse_lora = "lora" in features and all(is_lora_linear(p) for p in present)
    fast_act = "swiglu" in features
    if not (fuse_lora or fast_act):
        return None
    original = mlp.forward

    def gate_and_up(x):
        if up is not None:
            return gate(x), up(x)
        return gate(x).chunk(2, dim=-1)

    def forward(x):
        if fuse_lora:
            views = [lora_view(p) for p in present]
            if all(v is not None and v.dropout is None for v in views):
                parts = [(v.base, v.A, v.B) for v in views]
                if up is None:
                    parts.insert(1, None)
                return lora_mlp(x, *parts, use_triton=ctx.use_triton, activation=activation)
        if not fast_act:
            return original(x)
        return down(swiglu(*gate_and_up(x), use_triton=ctx.use_triton, activation=activation))

    kernel = f"{_KERNEL_NAMES[activation]} kernel"
    forward.description = f"fused LoRA MLP ({_KERNEL_NAMES[activation]} inside)" if fuse_lora else kernel
    if fuse_lora and fast_act:
        forward.description += f"; {kernel} when not fused"
    return forward
