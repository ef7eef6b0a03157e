"""The declarative rules point at things that exist in the installed transformers, and take effect."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

from tuning_core_fused_ops.ops.rope import rope_reference
from tuning_core_fused_ops.patcher import _INSTANCE_FACTORIES, patch_model
from tuning_core_fused_ops.patches import rope as rope_patch
from tuning_core_fused_ops.patches.install import plain_function, unpatch
from tuning_core_fused_ops.rules import ARCHITECTURES, FEATURES
from tuning_core_fused_ops.selection import Selection

ROPE_ARCHITECTURES = sorted(t for t, a in ARCHITECTURES.items() if any(r.kind == "function" for r in a.rules))


def _rope_inputs(batch=2, heads=2, seq=5, dim=8):
    cos, sin = torch.randn(batch, seq, dim), torch.randn(batch, seq, dim)
    return torch.randn(batch, heads, seq, dim), torch.randn(batch, 1, seq, dim), cos, sin


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_rule_targets_exist(model_type):
    arch = ARCHITECTURES[model_type]
    module = importlib.import_module(arch.modeling_module)
    assert hasattr(module, arch.causal_lm)
    for rule in arch.rules:
        assert set(rule.features) <= set(FEATURES), rule
        if rule.kind in ("forward", "loss_function"):
            assert hasattr(module, rule.target), rule
            assert rule.replacement in _INSTANCE_FACTORIES, rule
        elif rule.kind == "function":
            # transformers 5.25 wraps it in a kernelized Func module with an (*args, **kwargs) signature.
            target = getattr(module, rule.target)
            params = list(inspect.signature(plain_function(target)).parameters)
            assert params[:5] == ["q", "k", "cos", "sin", "unsqueeze_dim"], params
            q, k, cos, sin = _rope_inputs()
            for got, want in zip(target(q, k, cos, sin, unsqueeze_dim=1), rope_reference(q, k, cos, sin), strict=False):
                torch.testing.assert_close(got, want)
        elif rule.kind == "qkv":
            assert hasattr(module, rule.target), rule
        else:
            assert rule.kind == "lora_linear", rule
    for feature in arch.not_applicable:
        assert not any(feature in r.features and r.kind != "lora_linear" for r in arch.rules), feature


def _tiny_model(model_type):
    import transformers

    from tuning_core.testing.tiny import tiny_config

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(tiny_config(model_type, vocab_size=64))
    return model.eval()


def _count_rope_kernel_calls(monkeypatch):
    calls = []
    real = rope_patch.rope_triton
    monkeypatch.setattr(rope_patch, "rope_triton", lambda *a: calls.append(1) or real(*a))
    return calls


def _forward_counting_rope(model, monkeypatch):
    ids = torch.randint(3, 64, (2, 7))
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).logits
    calls = _count_rope_kernel_calls(monkeypatch)
    report = patch_model(model, Selection(rope=True))
    try:
        with torch.no_grad():
            got = model(input_ids=ids, use_cache=False).logits
    finally:
        unpatch(model)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    return calls, report


@pytest.mark.parametrize("model_type", ROPE_ARCHITECTURES)
def test_rope_rule_takes_effect_in_a_patched_forward(model_type, monkeypatch):
    """Each attention layer's RoPE runs our kernel once per forward: a rule that silently stops applying (a new
    transformers wrapping or renaming the function) fails here, not only a signature check."""
    model = _tiny_model(model_type)
    calls, report = _forward_counting_rope(model, monkeypatch)
    assert len(calls) == model.config.num_hidden_layers, report.replaced
    assert any("rope (process-wide)" in k for k in report.replaced)


def test_rope_rule_takes_effect_on_a_plain_module_function(monkeypatch):
    """The transformers <= 5.24 shape: the module attribute is the plain function (no kernelized Func)."""
    import transformers.models.llama.modeling_llama as modeling

    monkeypatch.setattr(modeling, "apply_rotary_pos_emb", plain_function(modeling.apply_rotary_pos_emb))
    assert inspect.isfunction(modeling.apply_rotary_pos_emb)
    model = _tiny_model("llama")
    calls, _ = _forward_counting_rope(model, monkeypatch)
    assert len(calls) == model.config.num_hidden_layers
