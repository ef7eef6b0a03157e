"""QuantLinear's torch path against a float reference built from the codes that were packed."""

import pytest
import torch
from peft_gptq_helpers import random_layer
from torch import nn

CASES = [  # (in, out, group size, desc_act, zero offset)
    (64, 48, 32, False, 1),
    (64, 48, 32, True, 1),
    (64, 32, 16, True, 0),
    (72, 16, 32, False, 1),  # last group is partial
    (72, 16, 32, True, 0),
    (64, 24, -1, False, 1),  # one group per output row
]


@pytest.mark.parametrize("k,n,gs,desc_act,offset", CASES)
def test_dequantize_matches_packed_codes(k, n, gs, desc_act, offset):
    layer, ref, _ = random_layer(k, n, gs, desc_act, offset)
    torch.testing.assert_close(layer.dequantize(torch.float64), ref, rtol=0, atol=0)


@pytest.mark.parametrize("k,n,gs,desc_act,offset", CASES)
def test_forward_and_input_gradient(k, n, gs, desc_act, offset):
    layer, ref, bias = random_layer(k, n, gs, desc_act, offset, bias=True)
    x = torch.randn(3, 5, k, dtype=torch.float32, requires_grad=True)
    y = layer(x)
    expected = x.double() @ ref + bias.double()
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    torch.testing.assert_close(x.grad.double(), g.double() @ ref.t(), rtol=1e-5, atol=1e-5)


def test_bfloat16_within_bf16_error():
    layer, ref, _ = random_layer(64, 48, 32, True, 1, dtype=torch.bfloat16)
    x = torch.randn(4, 64)
    y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.double(), x.double() @ ref, rtol=2e-2, atol=2e-2)


def test_is_a_frozen_linear_without_float_weight():
    layer, _, _ = random_layer(64, 16, 32, bias=True)
    assert isinstance(layer, nn.Linear)
    assert layer.weight.numel() == 0 and layer.weight.dtype == torch.float32  # placeholder: device and dtype
    assert "weight" not in layer.state_dict()
    assert sorted(layer.state_dict()) == ["bias", "g_idx", "qweight", "qzeros", "scales"]
    assert not layer.bias.requires_grad
    x = torch.randn(2, 64, requires_grad=True)
    layer(x).sum().backward()
    assert all(p.grad is None for p in layer.parameters())


def test_no_autograd_graph_without_grad():
    layer, ref, _ = random_layer(64, 16, 32)
    with torch.no_grad():
        y = layer(torch.ones(1, 64))
    assert y.grad_fn is None
    torch.testing.assert_close(y.double(), torch.ones(1, 64).double() @ ref, rtol=1e-5, atol=1e-5)
