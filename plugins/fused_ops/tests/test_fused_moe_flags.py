"""--fast_moe: fms-hf-tuning's forms (True, or an expert-parallel degree) and the bad inputs, caught before
the model loads (one-line error, exit code 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tuning_core.plugin_api import ConfigError
from tuning_core_fused_ops import plugin
from tuning_core_fused_ops.arguments import FastMoeArguments, FusedOpsArguments
from tuning_core_fused_ops.moe_selection import MoeSelection, moe_selection_from_config, validate


class Config:
    """What the plugin reads; ``section`` like the core's Config."""

    def __init__(self, fast_moe=None, model_name_or_path=None, peft_method="none", target_modules=None, backend="auto"):
        self._sections = {
            FastMoeArguments: FastMoeArguments(fast_moe=fast_moe),
            FusedOpsArguments: FusedOpsArguments(fused_ops_backend=backend),
        }
        self.model_name_or_path, self.peft_method, self.target_modules = model_name_or_path, peft_method, target_modules

    def section(self, cls):
        return self._sections[cls]


def _checkpoint(tmp_path, **cfg):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return str(tmp_path)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("False", None),
        (False, None),
        ("true", MoeSelection(1)),
        ("True", MoeSelection(1)),
        (True, MoeSelection(1)),
        ("1", MoeSelection(1)),
        ("2", MoeSelection(2)),
        (4, MoeSelection(4)),
    ],
)
def test_fms_forms(value, expected):
    assert moe_selection_from_config(Config(value)) == expected


def test_backend_is_the_shared_flag():
    assert moe_selection_from_config(Config("True", backend="torch")).backend == "torch"


@pytest.mark.parametrize(
    "value, message",
    [
        ("maybe", "--fast_moe: expected True, False or an expert-parallel degree (an integer >= 1), got 'maybe'"),
        ("0", "--fast_moe: the expert-parallel degree must be >= 1, got 0"),
        ("-2", "--fast_moe: the expert-parallel degree must be >= 1, got -2"),
    ],
)
def test_malformed_values(value, message):
    with pytest.raises(ConfigError) as err:
        moe_selection_from_config(Config(value))
    assert str(err.value) == message


def test_dense_model_is_refused_before_loading(tmp_path):
    path = _checkpoint(tmp_path, model_type="llama")
    with pytest.raises(
        ConfigError,
        match=r"--fast_moe: .*config\.json has model_type 'llama', which is not a "
        r"mixture-of-experts model --fast_moe supports \(supported: granitemoe, "
        r"mixtral, qwen3_moe\)",
    ):
        plugin.tuning_core_validate_config(Config("True", path))
    plugin.tuning_core_validate_config(Config(None, path))  # off: a dense model is fine


@pytest.mark.parametrize(
    "model_type, key",
    [("mixtral", "num_local_experts"), ("granitemoe", "num_local_experts"), ("qwen3_moe", "num_experts")],
)
def test_moe_models_pass(tmp_path, monkeypatch, model_type, key):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert validate(Config("True", _checkpoint(tmp_path, model_type=model_type, **{key: 6}))) == MoeSelection(1)


def test_degree_must_divide_the_experts(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    path = _checkpoint(tmp_path, model_type="qwen3_moe", num_experts=6)
    with pytest.raises(
        ConfigError,
        match=r"--fast_moe 4: the expert-parallel degree must divide the number of "
        r"experts \(6 in .*config\.json\)",
    ):
        validate(Config("4", path))


@pytest.mark.parametrize("world", ["1", "3"])
def test_degree_must_divide_the_world_size(tmp_path, monkeypatch, world):
    monkeypatch.setenv("WORLD_SIZE", world)
    path = _checkpoint(tmp_path, model_type="mixtral", num_local_experts=8)
    with pytest.raises(
        ConfigError,
        match=rf"--fast_moe 2: the expert-parallel degree must divide the world size "
        rf"\(WORLD_SIZE={world}\)",
    ):
        validate(Config("2", path))


def test_a_valid_degree_above_one_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    path = _checkpoint(tmp_path, model_type="mixtral", num_local_experts=8)
    with pytest.raises(
        ConfigError,
        match=r"--fast_moe 2: expert parallelism \(degree > 1\) is not implemented .*"
        r"use --fast_moe True",
    ):
        validate(Config("2", path))


def test_lora_target_modules_naming_experts_lists_the_targetable_ones(tmp_path):
    path = _checkpoint(tmp_path, model_type="mixtral", num_local_experts=8)
    with pytest.raises(ConfigError) as err:
        validate(Config("True", path, peft_method="lora", target_modules=["q_proj", "experts", "w1"]))
    message = str(err.value)
    assert message.startswith(
        "--target_modules experts w1: in mixtral the experts are 3-D parameters "
        "(experts.gate_up_proj, experts.down_proj)"
    )
    assert "targetable modules: q_proj, k_proj, v_proj, o_proj" in message
    assert "target_parameters: experts.gate_up_proj experts.down_proj" in message
    validate(Config("True", path, peft_method="lora", target_modules=["q_proj", "v_proj"]))
    qwen = _checkpoint(tmp_path, model_type="qwen3_moe", num_experts=8)
    validate(Config("True", qwen, peft_method="lora", target_modules=["down_proj"]))  # its dense layers have one


@pytest.mark.slow
def test_cli_exits_2_without_traceback_on_a_dense_model(tiny_llama, twitter_data, tmp_path):
    env = {**os.environ, "TUNING_CORE_PLUGINS": "fused_ops"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_core",
            "train",
            "--model_name_or_path",
            str(tiny_llama),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(tmp_path / "out"),
            "--fast_moe",
            "True",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "model_type 'llama', which is not a mixture-of-experts model --fast_moe supports" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
