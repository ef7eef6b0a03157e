"""Config parsing: flags, files, precedence, unknown keys, plugin hints, types."""

import json

import pytest

from tuning_core.config import load_train_config
from tuning_core.errors import ConfigError

BASE = ["--model_name_or_path", "m", "--output_dir", "out"]


def test_flags_reach_sections_and_training_args(tmp_path):
    cfg = load_train_config(
        BASE
        + [
            "--peft_method",
            "lora",
            "--r",
            "4",
            "--target_modules",
            "q_proj",
            "v_proj",
            "--learning_rate",
            "1e-3",
            "--num_train_epochs",
            "2",
        ]
    )
    assert cfg.peft_method == "lora" and cfg.r == 4
    assert cfg.target_modules == ["q_proj", "v_proj"]
    assert cfg.training_args.learning_rate == pytest.approx(1e-3)
    assert cfg.learning_rate == pytest.approx(1e-3)  # flat access reaches training args too
    assert cfg.training_args.num_train_epochs == 2


def test_fms_defaults_and_our_deliberate_ones():
    cfg = load_train_config(BASE)
    targs = cfg.training_args
    assert cfg.peft_method == "none"
    assert str(targs.save_strategy.value if hasattr(targs.save_strategy, "value") else targs.save_strategy) == "epoch"
    assert targs.gradient_checkpointing is False  # TRL defaults to True
    assert targs.bf16 is False and targs.fp16 is False  # CPU machine: full precision
    assert cfg.trackers == ["file_logger"]


def test_peft_method_none_spelled_like_fms():
    assert load_train_config(BASE + ["--peft_method", "None"]).peft_method == "none"


def test_json_config_with_flag_override(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(
        json.dumps(
            {
                "model_name_or_path": "m",
                "output_dir": "o",
                "r": 16,
                "lora_alpha": 8,
                "target_modules": ["c_attn"],
                "num_train_epochs": 5.0,
                "peft_method": "lora",
            }
        )
    )
    cfg = load_train_config(["--config", str(f), "--r", "2"])
    assert cfg.r == 2 and cfg.lora_alpha == 8 and cfg.target_modules == ["c_attn"]
    assert cfg.training_args.output_dir == "o"


def test_yaml_config(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model_name_or_path: m\noutput_dir: o\nlearning_rate: 0.01\nbf16: false\n")
    cfg = load_train_config(["--config", str(f)])
    assert cfg.training_args.learning_rate == pytest.approx(0.01)


def test_env_json_is_lowest_precedence(tmp_path, monkeypatch):
    f = tmp_path / "env.json"
    f.write_text(json.dumps({"model_name_or_path": "from-env", "output_dir": "o", "r": 3}))
    monkeypatch.setenv("SFT_TRAINER_CONFIG_JSON_PATH", str(f))
    cfg = load_train_config(["--r", "5"])
    assert cfg.model_name_or_path == "from-env" and cfg.r == 5


def test_unknown_flag_names_closest():
    with pytest.raises(ConfigError, match=r"unknown flag --lerning_rate; did you mean --learning_rate\?"):
        load_train_config(BASE + ["--lerning_rate", "1"])


def test_unknown_config_key_names_file_and_closest(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"model_name_or_path": "m", "output_dir": "o", "lora_alpah": 3}))
    with pytest.raises(ConfigError) as e:
        load_train_config(["--config", str(f)])
    assert str(f) in str(e.value) and "lora_alpah" in str(e.value) and "lora_alpha" in str(e.value)


def test_missing_plugin_flag_names_extra(builtin_plugins_only):
    with pytest.raises(ConfigError) as e:
        load_train_config(BASE + ["--padding_free", "huggingface"])
    assert str(e.value) == "--padding_free needs the packing plugin: pip install 'tuning-core[packing]'"


def test_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--r.*integer"):
        load_train_config(BASE + ["--r", "eight"])
    with pytest.raises(ConfigError, match="peft_method"):
        load_train_config(BASE + ["--peft_method", "adapters"])
    f = tmp_path / "bad.json"
    f.write_text('{"r": 3,\n "x": }')
    with pytest.raises(ConfigError, match=r"bad.json: line 2 is not valid JSON"):
        load_train_config(["--config", str(f)])


def test_bool_flag_forms():
    assert load_train_config(BASE + ["--trust_remote_code"]).trust_remote_code is True
    assert load_train_config(BASE + ["--trust_remote_code", "false"]).trust_remote_code is False
    assert load_train_config(BASE).trust_remote_code is False  # never on unless asked


def test_output_dir_required():
    with pytest.raises(ConfigError, match="--output_dir is required"):
        load_train_config(["--model_name_or_path", "m"])


def test_evaluation_strategy_alias():
    cfg = load_train_config(BASE + ["--evaluation_strategy", "steps", "--eval_steps", "5"])
    assert str(cfg.training_args.eval_strategy) in ("steps", "IntervalStrategy.STEPS")


def test_to_dict_is_json_serialisable():
    cfg = load_train_config(BASE + ["--peft_method", "lora"])
    d = cfg.to_dict()
    json.dumps(d)
    assert d["peft_method"] == "lora" and d["output_dir"] == "out"
