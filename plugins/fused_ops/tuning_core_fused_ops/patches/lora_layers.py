"""PEFT LoRA layers -> fused LoRA projections.

Whether a call can be fused is decided per call (``lora_view``), because PEFT
state changes at run time (adapters disabled, merged, switched). Anything
the fused functions do not cover falls back to PEFT's own forward: several
active adapters, DoRA and other variants, a LoRA bias, ``adapter_names``
batches, or a base layer whose dense weight we cannot obtain.

Base layers: ``nn.Linear`` (any float dtype); any quantized layer following
``plugin_api.QuantizedLinear`` (its own forward, and ``input_grad(dy)`` or
``dequantize(dtype)`` for the input gradient), such as the GPTQ plugin's,
whoever provides it; bitsandbytes 4-bit layers (their forward,
``bitsandbytes.functional.dequantize_4bit``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuning_core.plugin_api import QuantizedLinear

from ..ops.lora import BaseProjection, lora_linear, lora_shared_input
from .context import PatchContext
from .install import patched_forward, set_forward


def is_lora_linear(module) -> bool:
    """A PEFT LoRA layer with linear adapters over a base whose dense weight we can obtain."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover - peft is a core dependency
        return False
    if not isinstance(module, LoraLayer):
        return False
    adapters = getattr(module, "lora_A", None)
    if not isinstance(adapters, torch.nn.ModuleDict) or not len(adapters):
        return False
    if not all(isinstance(a, torch.nn.Linear) for a in adapters.values()):
        return False
    return frozen_base(module.base_layer, 1.0) is not None


def is_bnb_4bit(base) -> bool:
    cls = type(base)
    return cls.__module__.startswith("bitsandbytes") and cls.__name__ == "Linear4bit"


def is_quantized_base(base) -> bool:
    return isinstance(base, QuantizedLinear) or is_bnb_4bit(base)


def frozen_base(base, scaling: float) -> BaseProjection | None:
    """The base layer as a BaseProjection, or None when it is not a frozen layer we know."""
    bias = getattr(base, "bias", None)
    if isinstance(bias, torch.Tensor) and bias.requires_grad:
        return None  # a trained bias would need its own gradient
    if type(base) is torch.nn.Linear:
        return None if base.weight.requires_grad else BaseProjection.dense(base.weight, bias, scaling)
    if isinstance(base, QuantizedLinear):
        # Its forward dequantizes on the fly (e.g. a fused kernel on CUDA). For dy @ W we use its
        # input_grad(dy) when it offers one, else dequantize(dtype), which is [in, out].
        input_grad = getattr(base, "input_grad", None)
        if not callable(input_grad):

            def input_grad(dy):
                return dy @ base.dequantize(dy.dtype).t()

        return BaseProjection(base, input_grad, scaling)
    if is_bnb_4bit(base):
        import bitsandbytes.functional as bnbf  # only reached when bitsandbytes built the layer

        def input_grad(dy):
            return dy @ bnbf.dequantize_4bit(base.weight.data, base.weight.quant_state).to(dy.dtype)

        return BaseProjection(base, input_grad, scaling)
    return None


@dataclass
class LoraView:
    base: BaseProjection
    dropout: torch.nn.Module | None  # None when it is the identity in this call
    A: torch.Tensor
    B: torch.Tensor

    def lora_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.dropout is None else self.dropout(x)


def lora_view(layer) -> LoraView | None:
    """What a fused call needs from a PEFT LoRA layer right now, or None to use PEFT's forward."""
    if getattr(layer, "disable_adapters", False) or getattr(layer, "merged", False):
        return None
    active = [a for a in layer.active_adapters if a in layer.lora_A]
    if len(active) != 1:
        return None
    name = active[0]
    if name in getattr(layer, "lora_variant", {}) or getattr(layer, "use_dora", {}).get(name, False):
        return None
    lora_A, lora_B = layer.lora_A[name], layer.lora_B[name]
    if not (isinstance(lora_A, torch.nn.Linear) and isinstance(lora_B, torch.nn.Linear)):
        return None
    if lora_A.bias is not None or lora_B.bias is not None:
        return None
    base = frozen_base(layer.base_layer, float(layer.scaling[name]))
    if base is None:
        return None
    dropout = layer.lora_dropout[name]
    if isinstance(dropout, torch.nn.Identity) or not dropout.training or getattr(dropout, "p", 0.0) == 0.0:
        dropout = None
    return LoraView(base, dropout, lora_A.weight, lora_B.weight)


def fused_lora_linear_forward(layer):
    original = layer.forward

    def forward(x, *args, **kwargs):
        view = None if (args or kwargs) else lora_view(layer)
        if view is None:
            return original(x, *args, **kwargs)
        return lora_linear(x, view.base, view.lora_input(x), view.A, view.B)

    return forward


def install_lora_linear(model, ctx: PatchContext) -> int:
    """Every LoRA linear layer not already patched (e.g. by the q/k/v group)."""
    count = 0
    for module in model.modules():
        if is_lora_linear(module) and not patched_forward(module):
            set_forward(module, fused_lora_linear_forward(module), "fused_lora_linear")
            count += 1
    return count


class _SharedInputGroup:
    """LoRA projections the attention calls one after another on the same input (q, k, v).

    The first member computes all of them in one fused node and hands the
    others their result when they are called next with that same tensor.
    """

    def __init__(self, names, layers):
        self.names, self.layers = names, layers
        self.originals = {n: layer.forward for n, layer in zip(names, layers, strict=True)}
        self.pending: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def leader_forward(self):
        leader = self.names[0]

        def forward(x, *args, **kwargs):
            self.pending.clear()
            views = None if (args or kwargs) else [lora_view(layer) for layer in self.layers]
            if views is None or any(v is None for v in views):
                return self.originals[leader](x, *args, **kwargs)
            outs = lora_shared_input(x, [(v.base, v.lora_input(x), v.A, v.B) for v in views])
            self.pending = {n: (x, o) for n, o in zip(self.names[1:], outs[1:], strict=False)}
            return outs[0]

        return forward

    def member_forward(self, name):
        def forward(x, *args, **kwargs):
            entry = self.pending.pop(name, None)
            if entry is not None and entry[0] is x and not args and not kwargs:
                return entry[1]
            return self.originals[name](x, *args, **kwargs)

        return forward


def install_qkv(attention, ctx: PatchContext, names=("q_proj", "k_proj", "v_proj")) -> bool:
    """Group the attention's LoRA q/k/v projections (at least two of them); False when there is nothing to group."""
    members = [(n, getattr(attention, n, None)) for n in names]
    members = [(n, m) for n, m in members if m is not None and is_lora_linear(m) and not patched_forward(m)]
    if len(members) < 2:
        return False
    group = _SharedInputGroup([n for n, _ in members], [m for _, m in members])
    set_forward(members[0][1], group.leader_forward(), "fused_lora_qkv")
    for name, module in members[1:]:
        set_forward(module, group.member_forward(name), "fused_lora_qkv")
    return True
