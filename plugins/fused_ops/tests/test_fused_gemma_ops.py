"""The kernels the new architectures need, against eager references: GeGLU, Gemma's (1 + weight) RMSNorm,
and the final-logit soft-cap inside the fused linear cross-entropy. Triton interpreter and torch twins."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tuning_core_fused_ops.ops.fused_linear_ce import fused_linear_cross_entropy
from tuning_core_fused_ops.ops.rms_norm import rms_norm
from tuning_core_fused_ops.ops.swiglu import geglu, swiglu


@pytest.mark.parametrize("use_triton", [True, False])
def test_geglu_matches_gelu_tanh_times_up(use_triton):
    a = torch.randn(6, 40, requires_grad=True)
    b = torch.randn(6, 40, requires_grad=True)
    ref = F.gelu(a, approximate="tanh") * b
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (a, b), g)
    out = geglu(a, b, use_triton=use_triton)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(torch.autograd.grad(out, (a, b), g), ref_grads, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown gated activation 'relu'"):
        swiglu(a, b, activation="relu")


@pytest.mark.parametrize("use_triton", [True, False])
def test_gemma_rms_norm_matches_the_module(use_triton):
    from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm

    norm = Gemma2RMSNorm(48, eps=1e-6)
    norm.weight.data.normal_()
    x = torch.randn(2, 5, 48, requires_grad=True)
    ref = norm(x)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, norm.weight), g)
    out = rms_norm(x, norm.weight, 1e-6, use_triton=use_triton, offset=1.0)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(torch.autograd.grad(out, (x, norm.weight), g), ref_grads, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use_triton", [True, False])
@pytest.mark.parametrize("softcap", [None, 2.0])
def test_fused_linear_ce_soft_caps_inside_the_chunks(use_triton, softcap):
    h = torch.randn(21, 16, requires_grad=True)
    w = (torch.randn(50, 16) * 2).requires_grad_()
    t = torch.randint(0, 50, (21,))
    t[:4] = -100
    logits = h @ w.t() * 0.5
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    ref = F.cross_entropy(logits, t, ignore_index=-100)
    ref_grads = torch.autograd.grad(ref, (h, w))
    out = fused_linear_cross_entropy(h, w, t, logit_scale=0.5, chunk_rows=5, use_triton=use_triton, softcap=softcap)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(torch.autograd.grad(out, (h, w)), ref_grads, strict=False):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
