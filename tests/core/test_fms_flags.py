"""fms-hf-tuning 3.x's own flags (a committed snapshot of its argument list): `tuning-core train` accepts each.

A flag counts as accepted when the parser takes it and its value reaches the config, or, for the flags
tuning-core documents as unsupported, when it stops with that one clear error before anything loads.
"""

from pathlib import Path

import pytest

from tuning_core.config import load_train_config
from tuning_core.errors import ConfigError
from tuning_core.plugins import get_plugin_manager

SNAPSHOT = Path(__file__).parent / "data" / "fms_hf_tuning_flags.txt"
FIRST_PARTY_PLUGINS = ("packing", "fused_ops", "peft_gptq", "trackers")
BASE = ["--model_name_or_path", "m", "--output_dir", "out", "--training_data_path", "d.jsonl"]

# Accepted only through their documented clear error: (value, words the one-line error must contain).
CLEAR_ERRORS = {
    "dataset_image_field": ("image", "vision-language tuning is not supported yet"),
}

# Values where a type-derived sample would not be a valid setting.
SAMPLE_VALUES = {
    "init_lora_weights": ["gaussian"],
    "trainable_token_indices": ["3", "5"],
    "quantization_method": ["mxfp4"],
    "auto_gptq": ["triton_v2"],
    "bnb_qlora": ["nf4"],
    "fast_kernels": ["True", "True", "True"],
    "fused_lora": ["auto_gptq", "True"],
    "multipack": ["16"],
    "exp_metadata": ['{"gpu": "none"}'],
    "peft_method": ["lora"],
    "torch_dtype": ["float32"],
    "trackers": ["file_logger"],
    "prompt_tuning_init": ["RANDOM"],
    "target_modules": ["q_proj"],
    "chat_template": ["{{ messages }}"],
    "response_template": ["### Label:"],
    "dataset_text_field": ["output"],
    "data_formatter_template": ["{{input}}"],
    "trainer_controller_config_file": ["tc.yaml"],
    "aim_remote_server_port": ["53800"],
    "save_model_dir": ["saved"],
    "max_seq_length": ["128"],
}


def snapshot_flags() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in SNAPSHOT.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


FLAGS = snapshot_flags()


@pytest.fixture(autouse=True)
def first_party_plugins(plugins_enabled):
    plugins_enabled(*FIRST_PARTY_PLUGINS)


def _spec(flag):
    from tuning_core.config.loading import class_specs, registered_classes

    for spec in class_specs(registered_classes()):
        if flag in (spec.name, *spec.aliases):
            return spec
    return None


def _sample(spec) -> list[str]:
    if spec.name in SAMPLE_VALUES:
        return SAMPLE_VALUES[spec.name]
    if spec.choices:
        value = next(c for c in spec.choices if c != spec.default)
    elif spec.scalar is bool:
        value = not spec.default
    elif spec.scalar is int:
        value = 3
    elif spec.scalar is float:
        value = 0.25
    elif spec.scalar is dict:
        value = "{}"
    else:
        value = "x"
    return [str(value)]


def test_snapshot_is_the_fms_list():
    assert len(FLAGS) == len(set(FLAGS)) == 97
    assert {"model_name_or_path", "peft_method", "training_logs_filename", "dequantize"} <= set(FLAGS)


@pytest.mark.parametrize("flag", FLAGS)
def test_fms_flag_is_accepted(flag):
    spec = _spec(flag)
    assert spec is not None, f"--{flag} is not a tuning-core train flag"
    if flag in CLEAR_ERRORS:
        value, message = CLEAR_ERRORS[flag]
        config = load_train_config(BASE + [f"--{flag}", value])
        with pytest.raises(ConfigError, match=message) as err:
            get_plugin_manager().hook.tuning_core_validate_config(config=config)
        assert "\n" not in str(err.value)
        return
    values = _sample(spec)
    config = load_train_config(BASE + [f"--{flag}", *values])
    expected = spec.convert(values if spec.is_list else values[0], f"--{flag}")
    got = getattr(config, spec.name)
    if spec.name in ("peft_method", "quantization_method"):
        expected = expected.lower()
    assert got == expected or str(got) == str(expected), f"--{flag} {values} reached the config as {got!r}"


def test_fms_flags_are_config_keys_too(tmp_path):
    import json

    keys = {
        "training_logs_filename": "log.jsonl",
        "cache_dir": "hf-cache",
        "num_train_dataset_shards": 2,
        "num_eval_dataset_shards": 3,
        "enable_reduce_loss_sum": True,
        "flash_attn_implementation": "eager",
        "scanner_output_filename": "scan.json",
        "quantization_method": "mxfp4",
        "dequantize": True,
        "clearml_project": "p",
        "clearml_task": "t",
        "aim_url": "aim://host:53800",
    }
    path = tmp_path / "fms.json"
    path.write_text(json.dumps({"model_name_or_path": "m", "output_dir": "o", **keys}))
    config = load_train_config(["--config", str(path)])
    assert {k: getattr(config, k) for k in keys} == keys


def test_sample_values_name_real_flags():
    assert set(SAMPLE_VALUES) <= set(FLAGS)
