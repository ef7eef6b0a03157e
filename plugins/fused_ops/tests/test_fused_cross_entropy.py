"""Cross-entropy and fused linear cross-entropy kernels vs eager torch (float32, CPU, Triton interpreter).

Tolerances: loss rtol 1e-5; gradients atol 1e-6 (values of order 1/rows):
the kernels use the same float32 log-sum-exp maths, only summed in another order.
"""

import pytest
import torch
import torch.nn.functional as F

from tuning_core.testing.gpu import count_triton_launches, gpu_present, interpreter_requested
from tuning_core_fused_ops.ops import _runtime
from tuning_core_fused_ops.ops.cross_entropy import cross_entropy, loss_and_grad_
from tuning_core_fused_ops.ops.fused_linear_ce import default_chunk_rows, fused_linear_cross_entropy

IGNORE = -100


def test_kernels_are_interpreted_only_without_a_gpu():
    assert _runtime.INTERPRETED == interpreter_requested(), "TRITON_INTERPRET must be set before kernels import"
    assert interpreter_requested() or gpu_present(), "the root conftest sets TRITON_INTERPRET without a GPU"


def test_launch_counter_sees_the_triton_path():
    logits, t = torch.randn(6, 40), _targets(6, 40)
    with count_triton_launches() as launches:
        cross_entropy(logits, t)
    if _runtime.INTERPRETED:
        assert launches["_ce_forward_kernel"] == 1
    with count_triton_launches() as launches:
        loss_and_grad_(logits.clone(), t, IGNORE, grad_scale=1.0, use_triton=False)
    assert not launches


def _targets(n, vocab, ignored=(1, 4)):
    t = torch.randint(0, vocab, (n,))
    t[list(ignored)] = IGNORE
    return t


@pytest.mark.parametrize("n,vocab", [(7, 33), (5, 1000), (9, 4097)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_forward_backward(n, vocab, reduction):
    logits = (torch.randn(n, vocab) * 4).requires_grad_()
    ref_logits = logits.detach().clone().requires_grad_()
    t = _targets(n, vocab)
    loss = cross_entropy(logits, t, reduction=reduction)
    ref = F.cross_entropy(ref_logits, t, ignore_index=IGNORE, reduction=reduction)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    (loss * 1.7).backward()
    (ref * 1.7).backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=1e-5, atol=1e-6)
    assert logits.grad[1].abs().max() == 0  # ignored rows get no gradient


def test_cross_entropy_divisor_and_large_logits():
    # Logits of +-1e4 overflow a naive exp; the online log-sum-exp must not.
    logits = torch.randn(6, 300) * 1e4
    t = _targets(6, 300)
    loss = cross_entropy(logits, t, reduction="sum", divisor=torch.tensor(10))
    ref = F.cross_entropy(logits, t, ignore_index=IGNORE, reduction="sum") / 10
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-3)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    logits = torch.randn(3, 10, requires_grad=True)
    t = torch.full((3,), IGNORE)
    loss = cross_entropy(logits, t)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(logits, t, ignore_index=IGNORE))


@pytest.mark.parametrize("use_triton", [True, False])
def test_loss_and_grad_in_place(use_triton):
    logits = torch.randn(11, 777) * 3
    t = _targets(11, 777, ignored=(0, 10))
    ref_in = logits.clone().requires_grad_()
    ref = F.cross_entropy(ref_in, t, ignore_index=IGNORE, reduction="sum")
    (ref * 0.125).backward()
    loss = loss_and_grad_(logits, t, IGNORE, grad_scale=0.125, use_triton=use_triton)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, ref_in.grad, rtol=1e-5, atol=1e-6)


def _reference_linear_ce(h, w, t, divisor=None, scale=1.0):
    logits = (h @ w.t()) * scale
    if divisor is None:
        return F.cross_entropy(logits, t, ignore_index=IGNORE)
    return F.cross_entropy(logits, t, ignore_index=IGNORE, reduction="sum") / divisor


@pytest.mark.parametrize("use_triton", [True, False])
@pytest.mark.parametrize("n,hidden,vocab,chunk", [(13, 24, 517, 4), (6, 8, 129, None), (21, 16, 63, 5)])
@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_fused_linear_cross_entropy(use_triton, n, hidden, vocab, chunk, scale):
    h = torch.randn(n, hidden, requires_grad=True)
    w = torch.randn(vocab, hidden, requires_grad=True)
    t = _targets(n, vocab)
    h_ref, w_ref = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    loss = fused_linear_cross_entropy(h, w, t, logit_scale=scale, chunk_rows=chunk, use_triton=use_triton)
    ref = _reference_linear_ce(h_ref, w_ref, t, scale=scale)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    (loss * 3).backward()
    (ref * 3).backward()
    torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-4, atol=1e-5)
    assert h.grad[1].abs().max() == 0


@pytest.mark.parametrize("use_triton", [True, False])
def test_fused_linear_cross_entropy_divisor_and_frozen_weight(use_triton):
    h = torch.randn(10, 12, requires_grad=True)
    w = torch.randn(50, 12)  # frozen lm_head (LoRA runs): no weight gradient is computed
    t = _targets(10, 50)
    h_ref = h.detach().clone().requires_grad_()
    loss = fused_linear_cross_entropy(h, w, t, divisor=torch.tensor(17), chunk_rows=3, use_triton=use_triton)
    ref = _reference_linear_ce(h_ref, w, t, divisor=17)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-4, atol=1e-6)


def test_fused_linear_cross_entropy_no_grad_and_all_ignored():
    h, w = torch.randn(4, 8), torch.randn(20, 8)
    t = torch.randint(0, 20, (4,))
    with torch.no_grad():
        torch.testing.assert_close(fused_linear_cross_entropy(h, w, t), _reference_linear_ce(h, w, t))
    assert torch.isnan(fused_linear_cross_entropy(h, w, torch.full((4,), IGNORE)))


def test_fused_linear_cross_entropy_under_autocast():
    """Mixed precision: the chunks run in bfloat16 like an autocast lm_head; gradients come back float32."""
    h = torch.randn(12, 16, requires_grad=True)
    w = (torch.randn(40, 16) * 0.25).requires_grad_()
    t = _targets(12, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_linear_cross_entropy(h, w, t, chunk_rows=5, use_triton=False)
        ref = F.cross_entropy((h @ w.t()).float(), t, ignore_index=IGNORE)  # bf16 matmul under autocast
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=2e-2)
    loss.backward()
    assert h.grad.dtype == w.grad.dtype == torch.float32
    ref_h, ref_w = torch.autograd.grad(_reference_linear_ce(h, w, t), [h, w])
    torch.testing.assert_close(h.grad, ref_h, rtol=5e-2, atol=5e-3)
    torch.testing.assert_close(w.grad, ref_w, rtol=5e-2, atol=5e-3)


def test_default_chunk_rows_bounds_chunk_memory():
    # A chunk's logits stay within 0.4x the lm_head weight (rows <= 0.4 * hidden), in multiples of 64 rows.
    assert default_chunk_rows(100_000, 4096, 128_256) == 1600
    assert default_chunk_rows(100_000, 1024, 128_256) == 384
    assert default_chunk_rows(100_000, 64, 512) == 25
    assert default_chunk_rows(100_000, 16, 512) == 16
    assert default_chunk_rows(5, 4096, 128_256) == 5


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_linear_cross_entropy_half_precision_gpu(dtype, compiled_launches):
    h = torch.randn(300, 256, device="cuda", dtype=dtype, requires_grad=True)
    w = torch.randn(5000, 256, device="cuda", dtype=dtype, requires_grad=True) * 0.05
    t = torch.randint(0, 5000, (300,), device="cuda")
    loss = fused_linear_cross_entropy(h, w, t)
    assert sum(compiled_launches.values()) > 0, "the Triton path did not run"
    ref = _reference_linear_ce(h.float(), w.float(), t)
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
def test_cross_entropy_bf16_gpu(compiled_launches):
    logits = torch.randn(64, 32000, device="cuda", dtype=torch.bfloat16)
    t = torch.randint(0, 32000, (64,), device="cuda")
    loss = cross_entropy(logits, t)
    assert compiled_launches["_ce_forward_kernel"] == 1, compiled_launches
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), t), rtol=1e-3, atol=1e-3)
