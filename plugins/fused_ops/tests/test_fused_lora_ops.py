"""Fused LoRA autograd functions vs the eager LoRA formula, float32.

Tolerance rtol 1e-5 / atol 1e-5: the same matmuls, regrouped.
A quantized base is represented by a weight getter that dequantizes (int8 codes times scales):
the fused functions must use whatever dense weight the getter returns, in forward and backward.
"""

import pytest
import torch
import torch.nn.functional as F

from tuning_core_fused_ops.ops.lora import BaseProjection, lora_linear, lora_mlp, lora_shared_input

TOL = dict(rtol=1e-5, atol=1e-5)


def _proj(d_in, d_out, r=4, scaling=2.0, bias=False):
    w = torch.randn(d_out, d_in) / d_in**0.5
    b = torch.randn(d_out) if bias else None
    A = (torch.randn(r, d_in) * 0.3).requires_grad_()
    B = (torch.randn(d_out, r) * 0.3).requires_grad_()
    return w, b, A, B, scaling


def _eager(x, x_lora, p):
    w, b, A, B, s = p
    return F.linear(x, w, b) + (x_lora @ A.t()) @ B.t() * s


def _base(p, getter=None):
    w, b, _, _, s = p
    if getter is None:
        return BaseProjection.dense(w, b, s)
    return BaseProjection(lambda x: F.linear(x, getter(), b), lambda dy: dy @ getter(), s)


def _grads(*tensors):
    return [t.grad.clone() for t in tensors]


def _zero(*tensors):
    for t in tensors:
        t.grad = None


def test_lora_linear_with_and_without_dropout():
    p = _proj(12, 10, bias=True)
    x = torch.randn(2, 5, 12, requires_grad=True)
    for x_lora_of in (lambda x: x, lambda x: F.dropout(x, 0.5, training=True)):
        torch.manual_seed(1)
        y = lora_linear(x, _base(p), x_lora_of(x), p[2], p[3])
        g = torch.randn_like(y)
        y.backward(g)
        got = _grads(x, p[2], p[3])
        _zero(x, p[2], p[3])
        torch.manual_seed(1)
        ref = _eager(x, x_lora_of(x), p)
        torch.testing.assert_close(y, ref, **TOL)
        ref.backward(g)
        for a, b in zip(got, _grads(x, p[2], p[3]), strict=False):
            torch.testing.assert_close(a, b, **TOL)
        _zero(x, p[2], p[3])


def test_lora_shared_input_qkv():
    ps = [_proj(16, 16), _proj(16, 8, r=2, scaling=0.5), _proj(16, 8, r=3)]
    x = torch.randn(3, 7, 16, requires_grad=True)
    outs = lora_shared_input(x, [(_base(p), x, p[2], p[3]) for p in ps])
    gs = [torch.randn_like(o) for o in outs]
    torch.autograd.backward(outs, gs)
    params = [x] + [t for p in ps for t in (p[2], p[3])]
    got = _grads(*params)
    _zero(*params)
    refs = [_eager(x, x, p) for p in ps]
    for o, r in zip(outs, refs, strict=False):
        torch.testing.assert_close(o, r, **TOL)
    torch.autograd.backward(refs, gs)
    for a, b in zip(got, _grads(*params), strict=False):
        torch.testing.assert_close(a, b, **TOL)


def test_lora_linear_dequantizing_base_is_used_in_forward_and_backward():
    codes = torch.randint(-127, 128, (10, 12), dtype=torch.int8)
    scales = torch.rand(10, 1) * 0.01
    calls = []

    def dequantize():
        calls.append(1)
        return codes.float() * scales

    p = (codes.float() * scales, None) + _proj(12, 10)[2:]
    x = torch.randn(4, 12, requires_grad=True)
    y = lora_linear(x, _base(p, getter=dequantize), x, p[2], p[3])
    y.sum().backward()
    got = x.grad.clone()
    x.grad = None
    ref = _eager(x, x, p)
    ref.sum().backward()
    torch.testing.assert_close(y, ref, **TOL)
    torch.testing.assert_close(got, x.grad, **TOL)
    assert len(calls) == 2  # dequantized once in forward, once in backward; never stored


@pytest.mark.parametrize("use_triton", [True, False])
def test_lora_mlp(use_triton):
    hidden, inter = 12, 20
    gate, up, down = _proj(hidden, inter), _proj(hidden, inter, r=2), _proj(inter, hidden, scaling=0.25)
    x = torch.randn(2, 3, hidden, requires_grad=True)
    y = lora_mlp(x, *[(_base(p), p[2], p[3]) for p in (gate, up, down)], use_triton=use_triton)
    g = torch.randn_like(y)
    y.backward(g)
    params = [x] + [t for p in (gate, up, down) for t in (p[2], p[3])]
    got = _grads(*params)
    _zero(*params)
    ref = _eager(F.silu(_eager(x, x, gate)) * _eager(x, x, up), F.silu(_eager(x, x, gate)) * _eager(x, x, up), down)
    torch.testing.assert_close(y, ref, **TOL)
    ref.backward(g)
    for a, b in zip(got, _grads(*params), strict=False):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lora_mlp_half_precision_base_gpu(dtype, compiled_launches):
    """A half-precision base with float32 adapters (PEFT's default), as in a bf16/fp16 LoRA run."""
    hidden, inter = 256, 512

    def proj(d_in, d_out):
        w = (torch.randn(d_out, d_in, device="cuda") / d_in**0.5).to(dtype)
        return (
            w,
            None,
            (torch.randn(8, d_in, device="cuda") * 0.1).requires_grad_(),
            (torch.randn(d_out, 8, device="cuda") * 0.1).requires_grad_(),
            2.0,
        )

    gate, up, down = proj(hidden, inter), proj(hidden, inter), proj(inter, hidden)
    x = torch.randn(4, 64, hidden, device="cuda", dtype=dtype, requires_grad=True)
    y = lora_mlp(x, *[(_base(p), p[2], p[3]) for p in (gate, up, down)], use_triton=True)
    assert y.dtype == dtype
    assert compiled_launches["_swiglu_forward_kernel"] == 1, compiled_launches

    def eager(x, p):
        w, b, A, B, s = p
        return (F.linear(x, w, b) + (x.float() @ A.t()) @ B.t() * s).to(dtype)

    ref = eager(F.silu(eager(x, gate)) * eager(x, up), down)
    torch.testing.assert_close(y.float(), ref.float(), rtol=3e-2, atol=3e-2)
    y.float().sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()
