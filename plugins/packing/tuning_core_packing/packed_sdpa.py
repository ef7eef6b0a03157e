"""sdpa for padding-free rows, run example by example.

Under plain sdpa a padding-free row gets a dense block-diagonal mask, and the
kernel computes scores between every pair of tokens in the row: (sum of
lengths)^2 work, most of it masked away. This attention function splits the
row at ``cu_seq_lens_q`` and runs causal sdpa on each example: sum of
length^2 work, the same result (the plugin's probe and tests check it). Any
other call (padded batches, generation) goes to plain sdpa with the mask
transformers built, so the model behaves as before outside training rows.
"""

from __future__ import annotations

import itertools

NAME = "sdpa_packed"


def packed_sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if (
        cu is None
        or query.shape[0] != 1
        or key.shape[2] != query.shape[2]
        or kwargs.get("cu_seq_lens_k") is not cu
        or not getattr(module, "is_causal", True)
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    bounds = cu.tolist()
    outputs = [
        sdpa_attention_forward(
            module,
            query[:, :, s:e],
            key[:, :, s:e],
            value[:, :, s:e],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
            **kwargs,
        )[0]
        for s, e in itertools.pairwise(bounds)
    ]
    return torch.cat(outputs, dim=1), None  # (batch, seq, heads, dim), as sdpa_attention_forward returns


def register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # padded batches still get sdpa's mask


def _sliding(cfg) -> bool:
    return bool(getattr(cfg, "sliding_window", None)) and getattr(cfg, "use_sliding_window", True) is not False


def use_packed_sdpa(model) -> bool:
    """Switch a causal LM from sdpa to the per-example variant; False (unchanged) when it does not apply."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(base, "config", None)
    if cfg is None or getattr(cfg, "_attn_implementation", None) != "sdpa" or _sliding(cfg):
        return False  # per-example causal attention would ignore a sliding window
    if getattr(cfg, "is_encoder_decoder", False) or not hasattr(base, "set_attn_implementation"):
        return False
    register()
    try:
        base.set_attn_implementation(NAME)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
