"""Issue 18's architectures: patched and unpatched tiny random models give the same loss and gradients.

Models are built in memory from ``tuning_core.testing.tiny`` configs (vocabulary 128, 2 layers, hidden 64),
on the Triton interpreter (TRITON_INTERPRET=1, this folder's conftest) and on the torch backend.
Tolerances are those of test_fused_patching.
"""

from __future__ import annotations

import pytest
import torch

from tuning_core.plugin_api import ConfigError
from tuning_core_fused_ops.patcher import patch_model
from tuning_core_fused_ops.rules import ARCHITECTURES
from tuning_core_fused_ops.selection import Selection

NEW = ["qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "granitemoe", "qwen3_moe"]
MOE = {"granitemoe", "qwen3_moe"}
VOCAB = 128


@pytest.fixture(autouse=True)
def _restore_module_functions():
    yield
    import importlib

    from tuning_core_fused_ops.patches.install import _FUNCTION_ORIGINALS

    for (module_name, name), original in list(_FUNCTION_ORIGINALS.items()):
        setattr(importlib.import_module(module_name), name, original)
        del _FUNCTION_ORIGINALS[(module_name, name)]


def _model(arch, **overrides):
    import transformers

    from tuning_core.testing.tiny import tiny_config

    cfg = tiny_config(arch, vocab_size=VOCAB)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    for p in model.parameters():  # Gemma's norm weights start at 0 ((1 + w) = 1): randomise to test the offset
        if p.dim() == 1:
            p.data.normal_(0, 0.5)
    return model.train()


def _batch(batch=2, seq=9):
    ids = torch.randint(3, VOCAB, (batch, seq))
    labels = ids.clone()
    labels[0, :4] = -100
    return ids, labels


def _loss_and_grads(model, ids, labels, **kwargs):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    out = model(input_ids=ids, labels=labels, **kwargs)
    out.loss.backward()
    return out, {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(ref, got):
    (ref_out, ref_grads), (out, grads) = ref, got
    torch.testing.assert_close(out.loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == grads.keys() and ref_grads
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def _extra(arch):
    return {"output_router_logits": True} if arch in MOE else {}  # the router aux loss is part of the loss


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("arch", NEW)
def test_patched_matches_unpatched(arch, backend):
    # Gemma 2's default soft-caps (final 30, attention 50) barely bend tiny logits: a cap of 2 does.
    overrides = {"final_logit_softcapping": 2.0} if arch.startswith("gemma") else {}
    model = _model(arch, **overrides)
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels, **_extra(arch))
    model.eval()
    with torch.no_grad():
        ref_logits = model(input_ids=ids).logits
    model.train()

    report = patch_model(model, Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, backend=backend))
    got = _loss_and_grads(model, ids, labels, **_extra(arch))
    _assert_same(ref, got)
    assert got[0].logits is None  # the fused loss ran
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ref_logits, rtol=1e-5, atol=1e-5)

    arch_rules = ARCHITECTURES[arch]
    prefix = arch_rules.causal_lm.removesuffix("ForCausalLM")
    layers = model.config.num_hidden_layers
    q_k_norms = 2 * layers if arch in ("qwen3", "gemma3_text", "qwen3_moe") else 0
    per_layer = 4 if arch.startswith("gemma") else 2  # Gemma norms before and after attention and MLP
    norm = "gemma_rms_norm" if arch.startswith("gemma") else "rms_norm"
    assert report.replaced[f"{prefix}RMSNorm.forward -> {norm}"] == per_layer * layers + 1 + q_k_norms
    mlp = {k: v for k, v in report.replaced.items() if k.startswith(f"{prefix}MLP.forward")}
    if arch in MOE:
        assert not mlp or arch == "qwen3_moe"  # Qwen3-MoE's dense MLP class exists but these layers are sparse
    else:
        kernel = "GeGLU" if arch.startswith("gemma") else "SwiGLU"
        assert mlp == {f"{prefix}MLP.forward -> {kernel} kernel": layers}
    assert any("rope (process-wide)" in k for k in report.replaced) == (backend == "auto")


@pytest.mark.parametrize("arch", ["gemma2", "gemma3_text"])
def test_fused_loss_applies_the_final_logit_softcap(arch):
    """The cap changes the loss, and the fused loss (which never builds the logits) follows it."""
    ids, labels = _batch()
    losses = {}
    for cap in (None, 1.0):
        model = _model(arch, final_logit_softcapping=cap)
        ref = model(input_ids=ids, labels=labels).loss
        patch_model(model, Selection(loss="fused_linear", backend="torch"))
        out = model(input_ids=ids, labels=labels)
        assert out.logits is None
        torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-6)
        losses[cap] = ref.item()
    assert abs(losses[None] - losses[1.0]) > 1e-3


@pytest.mark.parametrize("cap", [0.0, -5.0, float("inf")])
def test_unsupported_softcap_is_a_config_error(cap):
    model = _model("gemma2", final_logit_softcapping=cap)
    with pytest.raises(ConfigError, match=r"final_logit_softcapping=.* gemma2 model config"):
        patch_model(model, Selection(loss="fused_linear"))


def _peft(model, targets):
    import peft

    cfg = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM", init_lora_weights=False
    )
    return peft.get_peft_model(model, cfg)


@pytest.mark.parametrize(
    "arch,targets,expect",
    [
        # Phi-3's fused projections: qkv_proj is one LoRA linear, gate_up_proj + down_proj one fused MLP node.
        (
            "phi3",
            ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            {
                "Phi3MLP.forward -> fused LoRA MLP (SwiGLU inside); SwiGLU kernel when not fused": 2,
                "other LoRA linear layers -> fused_lora_linear": 8,
            },
        ),  # all four, for calls the MLP node cannot take
        (
            "gemma2",
            ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
            {
                "Gemma2MLP.forward -> fused LoRA MLP (GeGLU inside); GeGLU kernel when not fused": 2,
                "Gemma2Attention LoRA q/k/v -> fused_lora_qkv": 2,
            },
        ),
        ("qwen3", ["q_proj", "k_proj", "v_proj", "o_proj"], {"Qwen3Attention LoRA q/k/v -> fused_lora_qkv": 2}),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_fused_lora_matches_peft(arch, targets, expect, backend):
    model = _peft(_model(arch), targets)
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    report = patch_model(
        model, Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, lora=True, backend=backend)
    )
    got = _loss_and_grads(model, ids, labels)
    _assert_same(ref, got)
    assert all("lora_" in n for n in got[1])
    for label, count in expect.items():
        assert report.replaced.get(label) == count, report.replaced


def test_phi3_partial_rotary_runs_the_kernel_on_the_rotated_channels(monkeypatch):
    """Phi-3 with partial_rotary_factor < 1 (Phi-4-mini's layout): the kernel rotates the first channels, the rest
    pass through; loss and gradients equal the model's own."""
    from tuning_core_fused_ops.patches import rope as rope_patch

    model = _model("phi3")
    cfg = model.config
    cfg.rope_parameters = {**cfg.rope_parameters, "partial_rotary_factor": 0.5}
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).train()
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    calls = []
    real = rope_patch.rope_triton
    monkeypatch.setattr(rope_patch, "rope_triton", lambda q, *a: calls.append(q.shape[-1]) or real(q, *a))
    patch_model(model, Selection(rope=True))
    _assert_same(ref, _loss_and_grads(model, ids, labels))
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    assert calls == [head_dim // 2] * cfg.num_hidden_layers
