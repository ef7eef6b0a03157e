"""The declarative rules point at things that exist in the installed transformers."""

from __future__ import annotations

import importlib
import inspect

import pytest

from tuning_core_fused_ops.patcher import _INSTANCE_FACTORIES
from tuning_core_fused_ops.rules import ARCHITECTURES, FEATURES


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
            params = list(inspect.signature(getattr(module, rule.target)).parameters)
            assert params[:5] == ["q", "k", "cos", "sin", "unsqueeze_dim"], params
        elif rule.kind == "qkv":
            assert hasattr(module, rule.target), rule
        else:
            assert rule.kind == "lora_linear", rule
    for feature in arch.not_applicable:
        assert not any(feature in r.features and r.kind != "lora_linear" for r in arch.rules), feature
