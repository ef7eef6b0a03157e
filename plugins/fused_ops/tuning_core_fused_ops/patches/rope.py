"""The modeling module's ``apply_rotary_pos_emb`` -> the fused RoPE kernel.

The replacement keeps the original's signature and falls back to it for
layouts the kernel does not take or tensors Triton cannot run on. It is
process-wide (the attention code looks the function up in its module), which
is harmless: the maths is the same.
"""

from __future__ import annotations

from ..ops._runtime import triton_runs_on
from ..ops.rope import kernel_takes, rope_triton


def rope_function(original):
    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1, **kwargs):
        if not kwargs and triton_runs_on(q) and kernel_takes(q, k, cos, sin, unsqueeze_dim):
            return rope_triton(q, k, cos, sin)
        return original(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim, **kwargs)

    return apply_rotary_pos_emb
