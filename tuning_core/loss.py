"""The loss path: project only the positions that are trained.

Transformers' causal-LM forward builds logits for every position, padding and
masked prompt tokens included, then discards most of them in the loss. With a
boolean ``logits_to_keep`` mask (transformers >= 5) the LM head runs only where
the next-token label is trained, and ``shift_labels`` hands the loss those
targets already aligned. The loss value is unchanged (sum over trained tokens /
num_items_in_batch); only work is skipped. benchmarks/core_overhead.py measures it.
"""

from __future__ import annotations

import inspect

IGNORE_INDEX = -100


def causal_lm(model):
    """The transformers model under PEFT/DDP/FSDP wrappers."""
    while hasattr(model, "module"):  # DistributedDataParallel
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def supports_trained_positions(model) -> bool:
    """True when the forward takes a boolean logits_to_keep and no prompt is prepended by PEFT."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return False  # virtual tokens shift every position; the mask would not line up
    base = causal_lm(model)
    try:
        params = inspect.signature(type(base).forward).parameters
    except (TypeError, ValueError):
        return False
    return "logits_to_keep" in params and hasattr(base, "loss_function")


def restrict_to_trained_positions(inputs: dict) -> dict:
    """Add logits_to_keep (where the next token is trained) and the matching shift_labels to a batch."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = shifted != IGNORE_INDEX
    inputs["logits_to_keep"] = keep
    inputs["shift_labels"] = shifted[keep]
    return inputs
