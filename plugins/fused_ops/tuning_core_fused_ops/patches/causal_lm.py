"""Loss replacements on the causal-LM class.

``fused_linear_cross_entropy``: a forward that, when the model is training
and ``labels`` are given, runs the model's own forward for everything but the
logits (asking it for the last position's logits only), captures the
decoder's final hidden states with a forward hook, and computes the loss from
them and the lm_head weight in chunks. The output carries the loss and no
logits. A ``logits_to_keep`` position tensor with matching ``shift_labels``
(the core's trained-positions batches) selects the rows first. Otherwise (no
labels, eval, generation) the original forward runs unchanged.

``triton_cross_entropy``: a ``loss_function`` with transformers' causal-LM
signature that runs the Triton cross-entropy on the full logits.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from transformers.modeling_utils import slice_logits_to_keep

from tuning_core.plugin_api import ConfigError

from ..ops.cross_entropy import cross_entropy
from ..ops.fused_linear_ce import fused_linear_cross_entropy
from ..rules import softcap_problem
from .context import PatchContext


def _shifted(labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    # Tokens < n predict token n: the target of position t is labels[t + 1]; the last position has none.
    return F.pad(labels, (0, 1), value=ignore_index)[..., 1:]


def _loss_positions_known(logits_to_keep, shift_labels) -> bool:
    """Whether the fused path knows each kept position's target: all positions (0), or a tensor of
    positions with ``shift_labels`` already aligned to them. A positive int asks for the last logits."""
    if torch.is_tensor(logits_to_keep):
        return shift_labels is not None
    return logits_to_keep == 0


def lm_head_weight(lm) -> torch.Tensor | None:
    """The lm_head weight when the head is a plain bias-free linear layer (else the loss cannot be fused)."""
    head = getattr(lm, "lm_head", None)
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    return head.weight


def final_logit_softcap(config, arch) -> float | None:
    """The soft-cap the model applies to its final logits (Gemma 2/3), which the fused loss applies per chunk."""
    if not arch.softcap_attr:
        return None
    value = getattr(config, arch.softcap_attr, None)
    problem = softcap_problem(value)
    if problem:
        raise ConfigError(
            f"{arch.softcap_attr}={value!r} in the {arch.model_type} model config: {problem}; the "
            "fused loss of --fast_kernels/--fused_linear_loss cannot apply it (use --fast_cross_entropy)"
        )
    return float(value) if value else None


def fused_linear_cross_entropy_forward(lm, ctx: PatchContext):
    """Factory for the causal LM's forward; None when the lm_head is not a plain linear layer."""
    if lm_head_weight(lm) is None:
        return None
    original = lm.forward  # the class's bound forward
    decoder = getattr(lm, ctx.arch.decoder_attr)
    divisor_attr = ctx.arch.logits_divisor_attr
    logit_scale = 1.0 / float(getattr(lm.config, divisor_attr)) if divisor_attr else 1.0
    softcap = final_logit_softcap(lm.config, ctx.arch)
    router_aux_loss = ctx.arch.router_aux_loss

    @functools.wraps(original)  # keeps the signature, so Trainer still passes num_items_in_batch
    def forward(*args, labels=None, **kwargs):
        keep = kwargs.get("logits_to_keep", 0)
        if labels is None or not lm.training or not _loss_positions_known(keep, kwargs.get("shift_labels")):
            return original(*args, labels=labels, **kwargs)
        kwargs.pop("logits_to_keep", None)
        return_dict = kwargs.pop("return_dict", None)
        captured = []
        handle = decoder.register_forward_hook(lambda module, inputs, output: captured.append(output[0]))
        try:
            out = original(*args, labels=None, logits_to_keep=1, return_dict=True, **kwargs)
        finally:
            handle.remove()
        hidden = captured[-1]
        if torch.is_tensor(keep):  # the caller selected positions, with shift_labels aligned to them
            hidden = slice_logits_to_keep(hidden, keep)
        ignore_index = kwargs.get("ignore_index", -100)
        targets = kwargs.get("shift_labels")
        if targets is None:
            targets = _shifted(labels, ignore_index)
        loss = fused_linear_cross_entropy(
            hidden.reshape(-1, hidden.shape[-1]),
            lm_head_weight(lm),
            targets.reshape(-1).to(hidden.device),
            ignore_index=ignore_index,
            divisor=kwargs.get("num_items_in_batch"),
            logit_scale=logit_scale,
            chunk_rows=ctx.selection.chunk_rows,
            use_triton=ctx.use_triton,
            softcap=softcap,
        )
        aux = getattr(out, "aux_loss", None) if router_aux_loss else None
        if aux is not None:
            loss = loss + lm.router_aux_loss_coef * aux.to(loss.device)
        fields = {k: v for k, v in out.items() if k not in ("loss", "logits")}
        result = type(out)(loss=loss, **fields)
        return result.to_tuple() if return_dict is False else result

    return forward


def triton_cross_entropy_loss(lm, ctx: PatchContext):
    """Factory for ``loss_function`` (transformers' ForCausalLMLoss signature); None on the torch backend,
    where the model's own loss already is the torch reference."""
    if ctx.use_triton is False:
        return None

    def loss_function(
        logits, labels, vocab_size, num_items_in_batch=None, ignore_index=-100, shift_labels=None, **kwargs
    ):
        if shift_labels is None:
            shift_labels = _shifted(labels, ignore_index)
        flat = logits.reshape(-1, vocab_size)
        targets = shift_labels.reshape(-1).to(logits.device)
        if num_items_in_batch is None:
            return cross_entropy(flat, targets, ignore_index=ignore_index, reduction="mean")
        return cross_entropy(flat, targets, ignore_index=ignore_index, reduction="sum", divisor=num_items_in_batch)

    return loss_function
