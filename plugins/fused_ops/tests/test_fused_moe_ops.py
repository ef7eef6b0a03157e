"""The scatter/gather expert MLP against transformers' own experts loop, torch path and Triton (interpreter)."""

from __future__ import annotations

import pytest
import torch

from tuning_core_fused_ops.ops.moe import expert_mlp, gmm_torch, gmm_triton, route, wgrad_torch, wgrad_triton


def _experts(hidden=24, intermediate=20, experts=5, act="silu"):
    import transformers
    from transformers.models.mixtral.modeling_mixtral import MixtralExperts

    cfg = transformers.MixtralConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_local_experts=experts, hidden_act=act
    )
    cfg._experts_implementation = "eager"  # the per-expert loop: the plainest reference
    module = MixtralExperts(cfg)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module


def _routing(tokens, experts, top_k=2, skip_expert=None):
    logits = torch.randn(tokens, experts)
    if skip_expert is not None:
        logits[:, skip_expert] = -1e9  # an expert no token reaches
    w, idx = logits.softmax(-1).topk(top_k, dim=-1)
    return idx, (w / w.sum(-1, keepdim=True)).requires_grad_()


def _run(fn, module, x, idx, w, grad):
    for t in (x, module.gate_up_proj, module.down_proj, w):
        t.grad = None
    out = fn()
    out.backward(grad)
    return [out.detach()] + [t.grad.clone() for t in (x, module.gate_up_proj, module.down_proj, w)]


@pytest.mark.parametrize("use_triton", [False, True], ids=["torch", "triton"])
@pytest.mark.parametrize("act", ["silu", "gelu_pytorch_tanh"])
def test_expert_mlp_matches_the_transformers_loop(use_triton, act):
    module = _experts(act=act)
    x = torch.randn(37, 24, requires_grad=True)
    idx, w = _routing(37, 5, skip_expert=3)
    grad = torch.randn(37, 24)
    ref = _run(lambda: module(x, idx, w), module, x, idx, w, grad)
    got = _run(
        lambda: expert_mlp(x, module.gate_up_proj, module.down_proj, idx, w, module.act_fn, use_triton=use_triton),
        module,
        x,
        idx,
        w,
        grad,
    )
    for name, a, b in zip(["out", "x", "gate_up_proj", "down_proj", "router weights"], got, ref, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert ref[2][3].abs().max() == 0 and got[2][3].abs().max() == 0  # the unused expert gets no gradient


def test_route_sorts_pairs_by_expert_and_drops_remote_experts():
    idx = torch.tensor([[2, 0], [1, 3], [3, 2]])
    r = route(idx, 4)
    assert r.counts == [1, 1, 2, 2]
    assert idx.reshape(-1)[r.order].tolist() == [0, 1, 2, 2, 3, 3]
    assert r.token_of.tolist() == (r.order // 2).tolist()
    local = route(idx, 2, first_expert=2)  # an expert-parallel rank holding experts 2 and 3
    assert local.counts == [2, 2] and idx.reshape(-1)[local.order].tolist() == [2, 2, 3, 3]


@pytest.mark.parametrize("gmm", [gmm_torch, gmm_triton], ids=["torch", "triton"])
def test_grouped_matmul_gathers_and_scatters(gmm):
    counts = [3, 0, 5, 1]
    a = torch.randn(7, 6)
    gather = torch.tensor([6, 0, 2, 2, 5, 1, 3, 4, 0])
    w = torch.randn(4, 10, 6)  # [E, out, in]
    expected = torch.cat([a[gather[0:3]] @ w[0].t(), a[gather[3:8]] @ w[2].t(), a[gather[8:9]] @ w[3].t()])
    torch.testing.assert_close(gmm(a, w, counts, gather=gather), expected, rtol=1e-5, atol=1e-5)
    wt = torch.randn(4, 6, 10)  # [E, in, out] with transpose=True
    expected_t = torch.cat([a[gather[0:3]] @ wt[0], a[gather[3:8]] @ wt[2], a[gather[8:9]] @ wt[3]])
    torch.testing.assert_close(gmm(a, wt, counts, gather=gather, transpose=True), expected_t, rtol=1e-5, atol=1e-5)
    scatter = torch.tensor([4, 0, 8, 1, 7, 2, 6, 3, 5])
    placed = gmm(a, w, counts, gather=gather, scatter=scatter, out_rows=10)
    torch.testing.assert_close(placed[scatter], expected, rtol=1e-5, atol=1e-5)
    assert placed[9].abs().max() == 0  # a row nothing lands on stays zero
    summed = gmm(a, w, counts, gather=gather, scatter=gather, accumulate=True, out_rows=7)
    torch.testing.assert_close(summed, torch.zeros(7, 10).index_add_(0, gather, expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wgrad", [wgrad_torch, wgrad_triton], ids=["torch", "triton"])
def test_weight_gradient_per_expert(wgrad):
    counts = [4, 0, 3]
    g, a = torch.randn(7, 5), torch.randn(9, 6)
    gather_a = torch.tensor([8, 0, 1, 1, 2, 7, 3])
    out = wgrad(g, a, counts, 3, gather_a=gather_a)
    torch.testing.assert_close(out[0], g[:4].t() @ a[gather_a[:4]], rtol=1e-5, atol=1e-5)
    assert out[1].abs().max() == 0
    torch.testing.assert_close(out[2], g[4:].t() @ a[gather_a[4:]], rtol=1e-5, atol=1e-5)


def test_autocast_runs_the_matmuls_in_its_dtype():
    module = _experts()
    x = torch.randn(16, 24, requires_grad=True)
    idx, w = _routing(16, 5)
    reference = module(x, idx, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = expert_mlp(x, module.gate_up_proj, module.down_proj, idx, w, module.act_fn, use_triton=False)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=5e-2, atol=5e-2)
    out.float().sum().backward()
    assert module.gate_up_proj.grad.dtype == torch.float32 and x.grad.dtype == torch.float32


@pytest.mark.gpu
def test_compiled_kernel_matches_the_torch_path_in_bfloat16():
    torch.manual_seed(0)
    e, h, i, t = 8, 256, 512, 1000
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    gate_up = (torch.randn(e, 2 * i, h, device="cuda") * h**-0.5).to(torch.bfloat16).requires_grad_()
    down = (torch.randn(e, h, i, device="cuda") * i**-0.5).to(torch.bfloat16).requires_grad_()
    w, idx = torch.randn(t, e, device="cuda").softmax(-1).topk(2, dim=-1)
    w.requires_grad_()
    grad = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    results = []
    for use_triton in (False, True):
        for leaf in (x, gate_up, down, w):
            leaf.grad = None
        out = expert_mlp(x, gate_up, down, idx, w, torch.nn.SiLU(), use_triton=use_triton)
        out.backward(grad)
        results.append([out.float()] + [leaf.grad.float() for leaf in (x, gate_up, down, w)])
    for name, a, b in zip(["out", "x", "gate_up_proj", "down_proj", "router weights"], *results, strict=False):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2 * b.abs().max().item(), msg=name)


def test_frozen_experts_get_no_weight_gradient_work():
    module = _experts()
    module.gate_up_proj.requires_grad_(False)
    module.down_proj.requires_grad_(False)
    x = torch.randn(16, 24, requires_grad=True)
    idx, w = _routing(16, 5)
    grad = torch.randn(16, 24)
    module(x, idx, w).backward(grad)
    ref_x, ref_w = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    expert_mlp(x, module.gate_up_proj, module.down_proj, idx, w, module.act_fn, use_triton=False).backward(grad)
    torch.testing.assert_close(x.grad, ref_x, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(w.grad, ref_w, rtol=1e-4, atol=1e-5)
    assert module.gate_up_proj.grad is None and module.down_proj.grad is None
