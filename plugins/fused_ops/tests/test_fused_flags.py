"""Flags: fms-hf-tuning's forms and the named flags resolve to the same selection; mistakes are ConfigErrors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from tuning_core.plugin_api import ConfigError
from tuning_core_fused_ops import plugin
from tuning_core_fused_ops.arguments import FusedOpsArguments
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
    assert (
        _sel(fused_linear_loss=True, fast_rms_norm=True, fast_rope=True).features
        == _sel(fast_kernels=["True", "True", "True"]).features
    )
    assert _sel(fast_swiglu=True, fast_lora=True).features == {"swiglu", "lora"}
    assert _sel(fast_kernels=["True", "False", "False"], fast_cross_entropy=True).loss == "cross_entropy"


@pytest.mark.parametrize(
    "flags,message",
    [
        (dict(fast_kernels=["True", "True"]), "--fast_kernels takes three booleans"),
        (dict(fast_kernels=["True", "maybe", "True"]), "--fast_kernels: expected True or False, got 'maybe'"),
        (dict(fused_lora=["auto_gptq"]), "--fused_lora takes a base kind and a boolean"),
        (dict(fused_lora=["exllama", "True"]), "--fused_lora: unknown base kind 'exllama'"),
        (dict(fused_linear_loss=True, fast_cross_entropy=True), "pick one"),
        (dict(fused_loss_chunk_size=-1), "--fused_loss_chunk_size must be >= 0"),
    ],
)
def test_bad_values(flags, message):
    with pytest.raises(ConfigError, match=message):
        _sel(**flags)


@pytest.mark.parametrize(
    "flags,flag", [(dict(fast_lora=True), "--fast_lora"), (dict(fused_lora=["auto_gptq", "True"]), "--fused_lora")]
)
@pytest.mark.parametrize("peft_method", ["pt", "none"])
def test_fused_lora_needs_a_lora_run(flags, flag, peft_method):
    with pytest.raises(
        ConfigError,
        match=f"{flag} fuses LoRA adapters and needs --peft_method lora \\(got --peft_method {peft_method}\\)",
    ):
        _sel(peft_method=peft_method, **flags)


@pytest.mark.parametrize("kind", ["auto_gptq", "bitsandbytes"])
def test_fused_lora_kind_needs_no_particular_plugin(kind):
    """The kind is fms-hf-tuning's word; whether the base is quantized is checked on the loaded model."""
    s = _sel(fused_lora=[kind, "True"])
    assert s.lora and s.lora_base == kind
    assert not _sel(fused_lora=[kind, "False"]).lora


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


def test_selection_names_no_other_plugin():
    import inspect

    from tuning_core_fused_ops import selection

    source = inspect.getsource(selection)
    assert "tuning_core_peft_gptq" not in source and "bnb_qlora" not in source


def test_validate_rejects_an_unsupported_checkpoint_before_loading(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "falcon"}))
    cfg = FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(tmp_path))
    with pytest.raises(
        ConfigError,
        match="model type 'falcon'.*supported model types: gemma2, gemma3_text, "
        "gpt_bigcode, granite, granitemoe, llama, mistral, mixtral, phi3, qwen2, "
        "qwen3, qwen3_moe",
    ):
        plugin.tuning_core_validate_config(cfg)
    plugin.tuning_core_validate_config(FakeConfig(model_name_or_path=str(tmp_path)))  # nothing selected: fine


def test_validate_accepts_the_tiny_models(tiny_llama, tiny_gptbigcode):
    for path in (tiny_llama, tiny_gptbigcode):
        plugin.tuning_core_validate_config(
            FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(path))
        )


def test_patch_hook_returns_none_when_nothing_is_selected():
    assert plugin.tuning_core_patch_model(FakeConfig(), model=object()) is None


def test_entry_point_and_light_import():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="tuning_core")}
    assert eps.get("fused_ops") == "tuning_core_fused_ops.plugin"
    code = (
        "import sys, tuning_core_fused_ops.plugin as p; p.tuning_core_config_classes(); "
        "print(sorted(m for m in ('torch', 'triton', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flag_metadata_follows_the_contract():
    import dataclasses

    for f in dataclasses.fields(FusedOpsArguments):
        assert f.metadata.get("help"), f.name
    nargs = {f.name: f.metadata.get("nargs") for f in dataclasses.fields(FusedOpsArguments)}
    assert nargs["fast_kernels"] == 3 and nargs["fused_lora"] == 2


@pytest.mark.parametrize("cap", [0, -1.5, "30", True])
def test_validate_rejects_a_gemma_softcap_the_fused_loss_cannot_apply(tmp_path, cap):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma2", "final_logit_softcapping": cap}))
    cfg = FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(tmp_path))
    with pytest.raises(
        ConfigError,
        match=r"config.json: final_logit_softcapping: expected a finite number c > 0 .*"
        r"--fast_cross_entropy",
    ):
        plugin.tuning_core_validate_config(cfg)
    # The full-logits loss is the model's own softcapped logits: nothing for the plugin to apply.
    plugin.tuning_core_validate_config(
        FakeConfig(FusedOpsArguments(fast_cross_entropy=True), model_name_or_path=str(tmp_path))
    )


@pytest.mark.parametrize("cap", [None, 30.0])
def test_validate_accepts_supported_gemma_softcaps(tmp_path, cap):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "final_logit_softcapping": cap}))
    plugin.tuning_core_validate_config(
        FakeConfig(FusedOpsArguments(fast_kernels=["True", "True", "True"]), model_name_or_path=str(tmp_path))
    )


def test_gemma_unsupported_softcap_through_the_cli_exits_2_without_traceback(tmp_path):
    from tuning_core.testing.tiny import bundled_dataset_path

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma2", "final_logit_softcapping": 0.0}))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_core",
            "train",
            "--model_name_or_path",
            str(tmp_path),
            "--training_data_path",
            str(bundled_dataset_path()),
            "--output_dir",
            str(tmp_path / "out"),
            "--fast_kernels",
            "True",
            "True",
            "True",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tuning-core: error:")]
    assert len(errors) == 1 and "config.json: final_logit_softcapping: expected a finite number c > 0" in errors[0]
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_tuning_core_plugin_details_lists_architectures_and_their_kernels():
    """`tuning-core plugins --json` shows, per supported architecture, which kernel each feature applies."""
    from tuning_core_fused_ops.rules import ARCHITECTURES

    details = plugin.tuning_core_plugin_details()["architectures"]
    assert sorted(details) == sorted(ARCHITECTURES)
    proc = subprocess.run(
        [sys.executable, "-m", "tuning_core", "plugins", "--json"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    row = {r["name"]: r for r in json.loads(proc.stdout)}["fused_ops"]
    assert "tuning_core_plugin_details" in row["hooks"]
    archs = row["details"]["architectures"]
    assert archs == details
    assert archs["gemma2"]["kernels"]["swiglu"] == "GeGLU (Gemma2MLP)"
    assert "(1 + weight)" in archs["gemma3_text"]["kernels"]["rms_norm"]
    assert "final_logit_softcapping soft-cap applied inside the chunks" in archs["gemma2"]["kernels"]["fused_linear"]
    assert archs["llama"]["kernels"]["swiglu"] == "SwiGLU (LlamaMLP)"
    assert "whole Phi3MLP" in archs["phi3"]["kernels"]["lora"]
    assert "swiglu" not in archs["granitemoe"]["kernels"] and "swiglu" in archs["granitemoe"]["not_applicable"]
    assert set(archs["gpt_bigcode"]["kernels"]) == {"fused_linear", "cross_entropy", "lora"}
    assert {t for t, a in archs.items() if "fast_moe" in a["kernels"]} == {"mixtral", "granitemoe", "qwen3_moe"}
    assert archs["qwen3_moe"]["kernels"]["fast_moe"].startswith("Qwen3MoeExperts ->")
    plain = subprocess.run(
        [sys.executable, "-m", "tuning_core", "plugins"], capture_output=True, text=True, timeout=300
    )
    assert "    architectures: gemma2, gemma3_text, gpt_bigcode, granite, granitemoe, llama" in plain.stdout
