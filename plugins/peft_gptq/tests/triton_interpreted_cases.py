"""Triton kernel cases for the interpreter; test_gptq_triton.py runs this file in a fresh process.

TRITON_INTERPRET must be set before triton is first imported (its standard
library is jitted at import), hence the separate process.
"""

import os

import pytest
import torch
from peft_gptq_helpers import random_layer

pytest.importorskip("triton")
assert os.environ.get("TRITON_INTERPRET") == "1", "run through test_gptq_triton.py"


CASES = [  # (rows, in, out, group size, desc_act, zero offset)
    (1, 64, 64, 32, False, 1),
    (5, 64, 48, 32, True, 1),
    (33, 96, 72, 32, True, 0),  # rows and columns not multiples of the tiles
    (7, 72, 16, 16, False, 0),
    (3, 64, 24, -1, False, 1),
]


@pytest.mark.parametrize("m,k,n,gs,desc_act,offset", CASES)
def test_kernels_match_torch_path_float32(m, k, n, gs, desc_act, offset):
    layer, ref, _ = random_layer(k, n, gs, desc_act, offset, bias=True, seed=m)
    x = torch.randn(m, k, requires_grad=True)
    g = torch.randn(m, n)

    layer.backend = "torch"
    y_torch = layer(x)
    y_torch.backward(g)
    grad_torch, x.grad = x.grad, None

    layer.backend = "triton"
    y_triton = layer(x)
    y_triton.backward(g)

    torch.testing.assert_close(y_triton, y_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, grad_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_triton.double(), x.double() @ ref + layer.bias.double(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_kernels_half_precisions(dtype):
    from tuning_core_peft_gptq import triton_kernels

    layer, ref, _ = random_layer(64, 48, 32, True, 1, seed=3)
    x = torch.randn(6, 64).to(dtype)
    out = triton_kernels.matmul(x, layer.qweight, layer.scales, layer.qzeros, layer.g_idx, layer.zero_offset)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), x.double() @ ref, rtol=2e-2, atol=2e-2)
    g = torch.randn(6, 48).to(dtype)
    back = triton_kernels.matmul_t(g, layer.qweight, layer.scales, layer.qzeros, layer.g_idx, layer.zero_offset)
    torch.testing.assert_close(back.double(), g.double() @ ref.t(), rtol=2e-2, atol=2e-2)


def test_lora_gradients_through_the_kernels():
    """A peft LoRA on a QuantLinear gets the same gradients from the Triton path as from the torch path."""
    from peft import LoraConfig, get_peft_model

    layer, _, _ = random_layer(64, 48, 16, True, 1, bias=True, seed=7)  # peft needs a parameter
    model = get_peft_model(torch.nn.Sequential(layer), LoraConfig(r=4, target_modules=["0"], init_lora_weights=False))
    x = torch.randn(9, 64)
    grads = {}
    for backend in ("torch", "triton"):
        layer.backend = backend
        model.zero_grad()
        model(x).pow(2).sum().backward()
        grads[backend] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert len(grads["torch"]) == 2
    for name, g in grads["torch"].items():
        torch.testing.assert_close(grads["triton"][name], g, rtol=1e-4, atol=1e-4)
