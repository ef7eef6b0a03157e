"""The Triton dequantize-matmul kernels against the torch path: interpreted on CPU, compiled on a GPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft_gptq_helpers import random_layer

from tuning_core.testing.gpu import count_triton_launches, interpreter_requested

pytest.importorskip("triton")
HERE = Path(__file__).parent


def test_interpreted_kernels_match_torch_path():
    """Runs triton_interpreted_cases.py (forward and input-gradient, float32/bfloat16/float16,
    desc_act, partial tiles, v1/v2 zeros) in a process started with TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            str(HERE / "triton_interpreted_cases.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout


def test_cpu_tensor_without_interpreter_is_refused(monkeypatch):
    from tuning_core_peft_gptq import triton_kernels

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    layer, _, _ = random_layer(64, 16, 32)
    with pytest.raises(RuntimeError, match="CUDA"):
        triton_kernels.matmul(torch.randn(2, 64), layer.qweight, layer.scales, layer.qzeros, layer.g_idx, 1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("desc_act", [False, True])
def test_compiled_kernels_on_gpu(dtype, desc_act):
    layer, _ref, _ = random_layer(256, 192, 64, desc_act, 1, bias=True, dtype=dtype)
    layer = layer.cuda()
    x = torch.randn(77, 256, device="cuda", dtype=dtype, requires_grad=True)
    g = torch.randn(77, 192, device="cuda", dtype=dtype)
    layer.backend = "torch"
    y_torch = layer(x)
    y_torch.backward(g)
    grad_torch, x.grad = x.grad, None
    layer.backend = "auto"  # CUDA picks the Triton kernels
    assert not interpreter_requested(), "gpu tests need compiled kernels: unset TRITON_INTERPRET"
    with count_triton_launches() as launches:
        y = layer(x)
        y.backward(g)
    assert sum(launches.values()) >= 2, f"forward and input-gradient kernels did not both launch: {launches}"
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(y.float(), y_torch.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(x.grad.float(), grad_torch.float(), rtol=tol, atol=tol)
