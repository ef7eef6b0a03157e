"""RMSNorm, RoPE and SwiGLU kernels (Triton interpreter) and their torch twins vs eager formulas, float32.

Tolerances: RMSNorm/RoPE/SwiGLU outputs and gradients rtol 1e-5 / atol 1e-5 (same float32
maths, different summation order for the RMSNorm row sums and the weight gradient).
"""

import pytest
import torch
import torch.nn.functional as F

from tuning_core_fused_ops.ops.rms_norm import rms_norm
from tuning_core_fused_ops.ops.rope import apply_rope, rope_reference
from tuning_core_fused_ops.ops.swiglu import swiglu

TOL = dict(rtol=1e-5, atol=1e-5)


def _rms_reference(x, w, eps):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _twins(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize("use_triton", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 64), (7, 33), (1, 130)])
def test_rms_norm(use_triton, shape):
    x = torch.randn(*shape, requires_grad=True)
    w = (torch.rand(shape[-1]) + 0.5).requires_grad_()
    xr, wr = _twins(x, w)
    y = rms_norm(x, w, 1e-6, use_triton=use_triton)
    ref = _rms_reference(xr, wr, 1e-6)
    torch.testing.assert_close(y, ref, **TOL)
    dy = torch.randn_like(y)
    y.backward(dy)
    ref.backward(dy)
    torch.testing.assert_close(x.grad, xr.grad, **TOL)
    torch.testing.assert_close(w.grad, wr.grad, **TOL)


def test_rms_norm_non_contiguous_input():
    base = torch.randn(6, 40)
    x = base[:, :33].requires_grad_()  # row stride 40, 33 columns
    w = torch.rand(33)
    torch.testing.assert_close(rms_norm(x, w, 1e-5, use_triton=True), _rms_reference(x, w, 1e-5), **TOL)


def _cos_sin(position_ids, head_dim, base=10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _qk(batch, q_heads, k_heads, seq, head_dim):
    # The model's layout: [batch, seq, heads, dim] viewed as [batch, heads, seq, dim] (non-contiguous).
    q = torch.randn(batch, seq, q_heads, head_dim).transpose(1, 2).requires_grad_()
    k = torch.randn(batch, seq, k_heads, head_dim).transpose(1, 2).requires_grad_()
    return q, k


@pytest.mark.parametrize("batch,q_heads,k_heads,seq,head_dim", [(2, 4, 2, 5, 16), (1, 3, 3, 7, 6), (3, 2, 1, 1, 10)])
def test_rope_matches_reference(batch, q_heads, k_heads, seq, head_dim):
    q, k = _qk(batch, q_heads, k_heads, seq, head_dim)
    position_ids = torch.arange(seq).repeat(batch, 1)
    cos, sin = _cos_sin(position_ids, head_dim)
    qr, kr = _twins(q, k)
    q_out, k_out = apply_rope(q, k, cos, sin, use_triton=True)
    q_ref, k_ref = rope_reference(qr, kr, cos, sin)
    assert q_out.stride() == q.stride()  # same layout as the input, as the eager code produces
    torch.testing.assert_close(q_out, q_ref, **TOL)
    torch.testing.assert_close(k_out, k_ref, **TOL)
    gq, gk = torch.randn_like(q_out), torch.randn_like(k_out)
    torch.autograd.backward([q_out, k_out], [gq, gk])
    torch.autograd.backward([q_ref, k_ref], [gq, gk])
    torch.testing.assert_close(q.grad, qr.grad, **TOL)
    torch.testing.assert_close(k.grad, kr.grad, **TOL)


def test_rope_honours_position_ids_of_packed_sequences():
    """Two sequences packed in one row (positions restart at 0) rotate like the same sequences alone."""
    head_dim, heads = 8, 2
    lens = (3, 4)
    position_ids = torch.cat([torch.arange(n) for n in lens]).unsqueeze(0)  # [[0,1,2,0,1,2,3]]
    q, k = _qk(1, heads, heads, sum(lens), head_dim)
    cos, sin = _cos_sin(position_ids, head_dim)
    q_out, k_out = apply_rope(q, k, cos, sin, use_triton=True)
    start = 0
    for n in lens:
        c, s = _cos_sin(torch.arange(n).unsqueeze(0), head_dim)
        q_alone, k_alone = rope_reference(q[:, :, start : start + n], k[:, :, start : start + n], c, s)
        torch.testing.assert_close(q_out[:, :, start : start + n], q_alone, **TOL)
        torch.testing.assert_close(k_out[:, :, start : start + n], k_alone, **TOL)
        start += n
    # ...and differently from rotating by the index in the row (what a kernel ignoring position_ids does).
    c_idx, s_idx = _cos_sin(torch.arange(sum(lens)).unsqueeze(0), head_dim)
    assert not torch.allclose(q_out, rope_reference(q, k, c_idx, s_idx)[0])


def test_rope_falls_back_for_other_layouts():
    q, k = _qk(2, 2, 2, 3, 8)
    cos, sin = _cos_sin(torch.arange(3).repeat(2, 1), 8)
    q_t, k_t = q.transpose(1, 2), k.transpose(1, 2)  # [batch, seq, heads, dim] with unsqueeze_dim=2
    q_out, _k_out = apply_rope(q_t, k_t, cos, sin, unsqueeze_dim=2, use_triton=True)
    torch.testing.assert_close(q_out, rope_reference(q_t, k_t, cos, sin, 2)[0], **TOL)


@pytest.mark.parametrize("use_triton", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 37), (1, 5000)])
def test_swiglu(use_triton, shape):
    a = (torch.randn(*shape) * 3).requires_grad_()
    b = torch.randn(*shape, requires_grad=True)
    ar, br = _twins(a, b)
    y = swiglu(a, b, use_triton=use_triton)
    ref = F.silu(ar) * br
    torch.testing.assert_close(y, ref, **TOL)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(a.grad, ar.grad, **TOL)
    torch.testing.assert_close(b.grad, br.grad, **TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gpu(dtype, compiled_launches):
    x = torch.randn(64, 512, device="cuda", dtype=dtype)
    w = torch.rand(512, device="cuda", dtype=dtype)
    torch.testing.assert_close(rms_norm(x, w, 1e-6), _rms_reference(x, w, 1e-6), rtol=2e-2, atol=2e-2)
    a, b = torch.randn(2, 1000, device="cuda", dtype=dtype), torch.randn(2, 1000, device="cuda", dtype=dtype)
    torch.testing.assert_close(swiglu(a, b), F.silu(a) * b, rtol=2e-2, atol=2e-2)
    assert compiled_launches["_rms_forward_kernel"] == 1, compiled_launches
    assert compiled_launches["_swiglu_forward_kernel"] == 1, compiled_launches


@pytest.mark.gpu
def test_rope_bf16_gpu(compiled_launches):
    q = torch.randn(2, 16, 4, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    k = torch.randn(2, 16, 2, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    cos, sin = (t.to("cuda", torch.bfloat16) for t in _cos_sin(torch.arange(16).repeat(2, 1), 64))
    got_q_k = apply_rope(q, k, cos, sin)
    assert compiled_launches["_rope_kernel"] >= 1, compiled_launches
    for got, want in zip(got_q_k, rope_reference(q, k, cos, sin), strict=False):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
