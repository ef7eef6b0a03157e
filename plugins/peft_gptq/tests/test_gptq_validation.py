"""Flag parsing and the config errors raised before any weight is loaded."""

import json

import pytest

from tuning_core.errors import ConfigError
from tuning_core.pipeline import run_training


@pytest.fixture
def no_weight_loading(monkeypatch):
    """Any attempt to load weights fails the test: the errors must come first."""
    import transformers

    from tuning_core_peft_gptq import gptq_loader as loader

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the config was validated")

    monkeypatch.setattr(loader, "load_gptq_model", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


def _args(model, data, out, *extra):
    return [
        "--model_name_or_path",
        str(model),
        "--training_data_path",
        str(data),
        "--output_dir",
        str(out),
        "--dataset_text_field",
        "output",
        "--response_template",
        "\\n### Label:",
        "--max_steps",
        "1",
        *extra,
    ]


@pytest.mark.parametrize(
    "base,extra,message",
    [
        ("gptq", ["--auto_gptq", "triton_v2", "--bnb_qlora", "nf4", "--peft_method", "lora"], "pass only one"),
        ("gptq", ["--auto_gptq", "triton_v2"], "add --peft_method lora"),
        ("gptq", ["--auto_gptq", "triton_v2", "--peft_method", "pt"], "add --peft_method lora"),
        ("float", ["--bnb_qlora", "nf4", "--peft_method", "none"], "add --peft_method lora"),
        (
            "gptq",
            ["--auto_gptq", "triton_v2", "--peft_method", "lora", "--torch_dtype", "float16"],
            "cannot compute in float16",
        ),
        (
            "float",
            ["--bnb_qlora", "nf4", "--peft_method", "lora", "--torch_dtype", "float16"],
            "cannot compute in float16",
        ),
        ("gptq", ["--auto_gptq", "triton_v2", "torch", "--peft_method", "lora"], "takes one value"),
        ("float", ["--bnb_qlora", "nf8", "--peft_method", "lora"], "nf4, fp4"),
        ("gptq", ["--auto_gptq", "exllama", "--peft_method", "lora"], "triton_v2, torch"),
        ("gptq", ["--auto_gptq", "triton_v2", "--peft_method", "lora", "--use_dora"], "--use_dora is not supported"),
        (
            "gptq",
            ["--auto_gptq", "triton_v2", "--peft_method", "lora", "--init_lora_weights", "pissa"],
            "pissa is not supported with --auto_gptq",
        ),
        (
            "gptq",
            ["--auto_gptq", "triton_v2", "--peft_method", "alora", "--alora_invocation_string", "x"],
            "add --peft_method lora",
        ),
    ],
)
def test_config_errors(gptq_llama, tiny_llama, twitter_data, tmp_path, no_weight_loading, base, extra, message):
    if "float16" in extra:
        import torch

        if torch.cuda.is_available():
            pytest.skip("float16 is served on GPUs")
    model = gptq_llama if base == "gptq" else tiny_llama
    with pytest.raises(ConfigError, match=message):
        run_training(_args(model, twitter_data, tmp_path, *extra))


def test_non_gptq_checkpoint_to_auto_gptq(tiny_llama, twitter_data, tmp_path, no_weight_loading):
    with pytest.raises(ConfigError, match="needs a GPTQ checkpoint.*tuning-core quantize"):
        run_training(_args(tiny_llama, twitter_data, tmp_path, "--auto_gptq", "triton_v2", "--peft_method", "lora"))


def test_gptq_checkpoint_without_the_flag(gptq_llama, twitter_data, tmp_path, no_weight_loading):
    with pytest.raises(ConfigError, match="is a GPTQ checkpoint: add --auto_gptq triton_v2"):
        run_training(_args(gptq_llama, twitter_data, tmp_path, "--peft_method", "lora"))


def test_bnb_on_a_gptq_checkpoint(gptq_llama, twitter_data, tmp_path, no_weight_loading):
    with pytest.raises(ConfigError, match="already GPTQ-quantized"):
        run_training(_args(gptq_llama, twitter_data, tmp_path, "--bnb_qlora", "nf4", "--peft_method", "lora"))


def test_unsupported_gptq_bits(gptq_llama, twitter_data, tmp_path, no_weight_loading):
    import shutil

    copy = tmp_path / "ckpt8"
    shutil.copytree(gptq_llama, copy)
    qc = json.loads((copy / "quantize_config.json").read_text())
    (copy / "quantize_config.json").write_text(json.dumps({**qc, "bits": 8}))
    with pytest.raises(ConfigError, match="cannot serve: bits=8"):
        run_training(_args(copy, twitter_data, tmp_path, "--auto_gptq", "triton_v2", "--peft_method", "lora"))


@pytest.mark.parametrize(
    "file_values,expected",
    [
        ({"auto_gptq": ["triton_v2"]}, (["triton_v2"], None)),  # fms-hf-tuning's JSON form
        ({"auto_gptq": "triton_v2"}, (["triton_v2"], None)),
        ({"bnb_qlora": "nf4"}, (None, "nf4")),
        ({"bnb_qlora": ["fp4"]}, (None, "fp4")),
    ],
)
def test_config_file_forms(tmp_path, file_values, expected):
    from tuning_core.config import load_train_config
    from tuning_core_peft_gptq.arguments import bnb_quant_type

    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"output_dir": str(tmp_path), **file_values}))
    config = load_train_config(["--config", str(cfg_file)])
    assert (config.auto_gptq, bnb_quant_type(config)) == expected


def test_cli_forms(tmp_path):
    from tuning_core.config import load_train_config
    from tuning_core_peft_gptq.arguments import bnb_quant_type, gptq_kernel

    config = load_train_config(["--output_dir", str(tmp_path), "--bnb_qlora", "nf4"])
    assert bnb_quant_type(config) == "nf4" and gptq_kernel(config) is None
    config = load_train_config(["--output_dir", str(tmp_path), "--auto_gptq", "triton_v2"])
    assert gptq_kernel(config) == "triton_v2" and bnb_quant_type(config) is None


def test_entry_point_module_is_import_light():
    import subprocess
    import sys

    code = (
        "import sys, tuning_core_peft_gptq.plugin as p; p.tuning_core_config_classes(); "
        "p.tuning_core_cli_commands(); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
