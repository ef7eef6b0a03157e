"""Choose Triton or the torch implementations, and say why (the banner shows it)."""

from __future__ import annotations

import torch

from tuning_core.plugin_api import ConfigError

from .ops._runtime import INTERPRETED


def resolve_backend(requested: str) -> tuple[bool | None, str]:
    """(use_triton, note). ``None`` means Triton wherever the tensors allow it (falls back per tensor)."""
    if requested == "torch":
        return False, "backend: torch implementations (--fused_ops_backend torch)"
    if torch.cuda.is_available():
        return None, "backend: Triton kernels on CUDA"
    if INTERPRETED:
        return None, (
            "backend: Triton kernels through the CPU interpreter (TRITON_INTERPRET=1): correct but slow, "
            "meant for testing"
        )
    if requested == "triton":
        raise ConfigError(
            "--fused_ops_backend triton: Triton cannot run here (no CUDA, and TRITON_INTERPRET=1 was "
            "not set before start-up); use --fused_ops_backend auto or torch"
        )
    return False, (
        "backend: torch implementations (no CUDA and TRITON_INTERPRET is not set): chunked torch fused "
        "linear cross-entropy, torch RMSNorm/SwiGLU/LoRA autograd functions"
    )
