"""Flags: fms-hf-tuning's forms and the named flags resolve to the same selection; mistakes are ConfigErrors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from tuning_core.plugin_api import ConfigError
from tuning_core_fused_ops import plugin
from tuning_core_fused_ops.args import FusedOpsArguments
from tuning_core_fused_ops.selection import selection_from_config


@dataclass
class FakeConfig:
    """Just the attributes the plugin reads (the core's Config is flat in the same way)."""

    args: FusedOpsArguments = field(default_factory=FusedOpsArguments)
    peft_method: str = "lora"
    model_name_or_path: str | None = None
    auto_gptq: list | None = None
    bnb_qlora: list | None = None

    def __getattr__(self, name):
        return getattr(self.args, name)

    def section(self, cls):
        return self.args

    def has(self, name):
        return name in ("auto_gptq", "bnb_qlora") or hasattr(self.args, name)


def _sel(peft_method="lora", **flags):
    return selection_from_config(FakeConfig(FusedOpsArguments(**flags), peft_method=peft_method))


def test_nothing_selected_by_default():
    assert not _sel().features


def test_fms_fast_kernels_form():
    s = _sel(fast_kernels=["True", "True", "True"])
    assert s.features == {"fused_linear", "rms_norm", "rope"}
    assert _sel(fast_kernels=["true", "false", "True"]).features == {"fused_linear", "rope"}
    assert _sel(fast_kernels=[True, True, False]).features == {"fused_linear", "rms_norm"}  # from a JSON config


def test_named_flags_match_the_fms_form():
    assert _sel(fused_linear_loss=True, fast_rms_norm=True, fast_rope=True).features == \
        _sel(fast_kernels=["True", "True", "True"]).features
    assert _sel(fast_swiglu=True, fast_lora=True).features == {"swiglu", "lora"}
    assert _sel(fast_kernels=["True", "False", "False"], fast_cross_entropy=True).loss == "cross_entropy"


@pytest.mark.parametrize("flags,message", [
    (dict(fast_kernels=["True", "True"]), "--fast_kernels takes three booleans"),
    (dict(fast_kernels=["True", "maybe", "True"]), "--fast_kernels: expected True or False, got 'maybe'"),
    (dict(fused_lora=["auto_gptq"]), "--fused_lora takes a base kind and a boolean"),
    (dict(fused_lora=["exllama", "True"]), "--fused_lora: unknown base kind 'exllama'"),
    (dict(fused_linear_loss=True, fast_cross_entropy=True), "pick one"),
    (dict(fused_loss_chunk_size=-1), "--fused_loss_chunk_size must be >= 0"),
])
def test_bad_values(flags, message):
    with pytest.raises(ConfigError, match=message):
        _sel(**flags)


@pytest.mark.parametrize("flags,flag", [(dict(fast_lora=True), "--fast_lora"),
                                        (dict(fused_lora=["auto_gptq", "True"]), "--fused_lora")])
@pytest.mark.parametrize("peft_method", ["pt", "none"])
def test_fused_lora_needs_a_lora_run(flags, flag, peft_method):
    with pytest.raises(ConfigError, match=f"{flag} fuses LoRA adapters and needs --peft_method lora "
                                          f"\\(got --peft_method {peft_method}\\)"):
        _sel(peft_method=peft_method, **flags)


@pytest.mark.parametrize("option", ["use_dora", "lora_bias"])
def test_fused_lora_refuses_lora_variants_it_cannot_fuse(option):
    @dataclass
    class WithLoraOptions(FakeConfig):
        use_dora: bool | None = None
        lora_bias: bool | None = None

        def has(self, name):
            return name in ("use_dora", "lora_bias") or super().has(name)

    with pytest.raises(ConfigError, match=f"--fast_lora fuses plain LoRA and cannot fuse --{option}"):
        selection_from_config(WithLoraOptions(FusedOpsArguments(fast_lora=True), **{option: True}))
    assert selection_from_config(WithLoraOptions(FusedOpsArguments(fast_lora=True))).lora


def test_fused_lora_auto_gptq_needs_the_gptq_base():
    pytest.importorskip("tuning_core_peft_gptq")
    with pytest.raises(ConfigError, match="--auto_gptq is not set"):
        _sel(fused_lora=["auto_gptq", "True"])
    cfg = FakeConfig(FusedOpsArguments(fused_lora=["auto_gptq", "True"]), auto_gptq=["triton_v2"])
    s = selection_from_config(cfg)
    assert s.lora and s.lora_base == "auto_gptq"
    assert not _sel(fused_lora=["auto_gptq", "False"]).lora


def test_fused_lora_bitsandbytes_needs_bitsandbytes():
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(ConfigError, match="needs the 'bitsandbytes' package"):
            _sel(fused_lora=["bitsandbytes", "True"])
    else:
        with pytest.raises(ConfigError, match="--bnb_qlora is not set"):
            _sel(fused_lora=["bitsandbytes", "True"])


def test_validate_rejects_an_unsupported_checkpoint_before_loading(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    cfg = FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(tmp_path))
    with pytest.raises(ConfigError, match="model type 'qwen2'.*supported model types: gpt_bigcode, granite, llama, "
                                          "mistral, mixtral"):
        plugin.tuning_core_validate_config(cfg)
    plugin.tuning_core_validate_config(FakeConfig(model_name_or_path=str(tmp_path)))  # nothing selected: fine


def test_validate_accepts_the_tiny_models(tiny_llama, tiny_gptbigcode):
    for path in (tiny_llama, tiny_gptbigcode):
        plugin.tuning_core_validate_config(
            FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(path)))


def test_patch_hook_returns_none_when_nothing_is_selected():
    assert plugin.tuning_core_patch_model(FakeConfig(), model=object()) is None


def test_entry_point_and_light_import():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="tuning_core")}
    assert eps.get("fused_ops") == "tuning_core_fused_ops.plugin"
    code = ("import sys, tuning_core_fused_ops.plugin as p; p.tuning_core_config_classes(); "
            "print(sorted(m for m in ('torch', 'triton', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flag_metadata_follows_the_contract():
    import dataclasses

    for f in dataclasses.fields(FusedOpsArguments):
        assert f.metadata.get("help"), f.name
    nargs = {f.name: f.metadata.get("nargs") for f in dataclasses.fields(FusedOpsArguments)}
    assert nargs["fast_kernels"] == 3 and nargs["fused_lora"] == 2
