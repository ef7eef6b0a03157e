"""The GPTQ algorithm on one matrix: what it stores, and that it beats round-to-nearest on the layer output."""

import pytest
import torch

from tuning_core_peft_gptq.gptq import gptq_quantize


def _problem(n_out=48, n_in=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g) * 0.05
    # Correlated inputs with uneven scales, as activations are: where GPTQ's error feedback pays off.
    x = (
        torch.randn(512, n_in, generator=g) @ torch.randn(n_in, n_in, generator=g) * 0.3
        + torch.randn(n_in, generator=g) * 2
    )
    return w, x, 2 * x.t() @ x / x.shape[0]


def _output_error(w, wq, x):
    return float(((x @ (w - wq).t()) ** 2).mean())


@pytest.mark.parametrize("group_size", [16, 32, -1])
@pytest.mark.parametrize("desc_act", [False, True])
@pytest.mark.parametrize("sym", [True, False])
def test_beats_round_to_nearest_on_layer_output(group_size, desc_act, sym):
    w, x, h = _problem()
    res = gptq_quantize(w, h, group_size=group_size, desc_act=desc_act, sym=sym, min_zero=1)
    # Round-to-nearest is GPTQ with an identity Hessian and no damping: no error feedback.
    rtn = gptq_quantize(w, torch.eye(w.shape[1]), group_size=group_size, sym=sym, damp_percent=0.0, min_zero=1)
    err, err_rtn = _output_error(w, res.dequantize().t(), x), _output_error(w, rtn.dequantize().t(), x)
    assert err < 0.6 * err_rtn
    # RTN's weights sit within half a step of the originals (plus the float16 rounding of the step).
    step = rtn.scales.float()[rtn.g_idx.long()].t()
    assert torch.all((rtn.dequantize().t() - w).abs() <= step * 0.51)


@pytest.mark.parametrize("desc_act", [False, True])
def test_stored_layout(desc_act):
    w, _, h = _problem()
    res = gptq_quantize(w, h, group_size=16, desc_act=desc_act, sym=False, min_zero=1)
    assert res.q.shape == (64, 48) and res.q.dtype == torch.int32
    assert int(res.q.min()) >= 0 and int(res.q.max()) <= 15
    assert res.scales.shape == (4, 48) and res.scales.dtype == torch.float16
    assert int(res.zeros.min()) >= 1  # v1 stores zero-1 in 4 bits
    # Every group holds exactly group_size input features, contiguous ones unless desc_act.
    assert torch.bincount(res.g_idx.long()).tolist() == [16] * 4
    assert torch.equal(res.g_idx, (torch.arange(64) // 16).int()) != desc_act


def test_symmetric_zero_point_is_8():
    w, _, h = _problem()
    res = gptq_quantize(w, h, group_size=32, sym=True)
    assert torch.all(res.zeros == 8)


def test_dead_inputs_get_zero_weight():
    w, x, _ = _problem()
    x[:, 5] = 0
    res = gptq_quantize(w, 2 * x.t() @ x / x.shape[0], group_size=32)
    assert torch.all(res.dequantize()[5] == 0)
