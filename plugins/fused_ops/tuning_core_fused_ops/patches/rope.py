"""The modeling module's ``apply_rotary_pos_emb`` -> the fused RoPE kernel.

The replacement keeps the original's signature and falls back to it for
layouts the kernel does not take or tensors Triton cannot run on. It is
process-wide (the attention code looks the function up in its module, also
under transformers 5.25, where that name is a kernelized ``Func`` module), which
is harmless: the maths is the same.
"""

from __future__ import annotations

import functools

import torch

from ..ops._runtime import triton_runs_on
from ..ops.rope import kernel_takes, rope_triton
from .install import plain_function


def rope_function(original, partial: bool = False):
    """``original`` is the module's function or transformers 5.25's kernelized ``Func`` module around it; the
    fallback calls it as it is, so a hub kernel selected for it still runs.

    ``partial``: the original rotates only the first ``cos.shape[-1]`` channels of each head and passes the
    rest through (Phi-3's ``partial_rotary_factor``); the kernel then runs on those channels.
    """

    @functools.wraps(plain_function(original))  # the real signature, also under transformers 5.25
    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1, **kwargs):
        if not kwargs and triton_runs_on(q):
            rot = cos.shape[-1]
            if kernel_takes(q, k, cos, sin, unsqueeze_dim):
                return rope_triton(q, k, cos, sin)
            if (
                partial
                and q.dim() == 4
                and rot < q.shape[-1]
                and kernel_takes(q[..., :rot], k[..., :rot], cos, sin, unsqueeze_dim)
            ):
                q_rot, k_rot = rope_triton(q[..., :rot], k[..., :rot], cos, sin)
                return torch.cat([q_rot, q[..., rot:]], dim=-1), torch.cat([k_rot, k[..., rot:]], dim=-1)
        return original(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim, **kwargs)

    return apply_rotary_pos_emb
