"""Shared helpers: calibration texts, and random packed layers with their float reference."""

import json

import torch

from tuning_core.testing.training import logged_values, train_argv
from tuning_core_peft_gptq import nibbles
from tuning_core_peft_gptq.qlinear import QuantLinear


def calibration_texts() -> list[str]:
    from tuning_core.testing.tiny import bundled_dataset_path

    with open(bundled_dataset_path(), encoding="utf-8") as f:
        return [json.loads(line)["output"] for line in f]


def random_layer(k, n, group_size, desc_act=False, zero_offset=1, bias=False, seed=0, dtype=torch.float32):
    """A QuantLinear with random codes, and the [k, n] float weight those codes stand for."""
    g = torch.Generator().manual_seed(seed)
    gs = k if group_size == -1 else group_size
    groups = -(-k // gs)
    q = torch.randint(0, 16, (k, n), generator=g)
    zeros = torch.randint(zero_offset, 16, (groups, n), generator=g)  # true zero points
    scales = (torch.rand(groups, n, generator=g) * 0.02 + 0.001).half()
    if desc_act:  # act-order: groups over a permutation of the input features
        perm = torch.randperm(k, generator=g)
        g_idx = (torch.argsort(perm) // gs).int()
    else:
        g_idx = (torch.arange(k) // gs).int()
    b = torch.randn(n, generator=g) if bias else None
    layer = QuantLinear.from_packed(
        nibbles.pack_rows(q),
        nibbles.pack_cols((zeros - zero_offset) & 15),
        scales,
        g_idx,
        bias=b,
        zero_offset=zero_offset,
        group_size=None if group_size == -1 else group_size,
        dtype=dtype,
    )
    idx = g_idx.long()
    ref = (q - zeros[idx]).double() * scales.double()[idx]
    return layer, ref, b


# --- end-to-end runs ------------------------------------------------------------------------------

PROMPT = "### Text: my flight was late\n\n### Label:"


def train_args(model, data, out, *extra, steps=8):
    return train_argv(model, data, out, "--peft_method", "lora", *extra, steps=steps)


losses = logged_values
