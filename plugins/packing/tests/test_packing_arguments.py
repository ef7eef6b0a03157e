"""Flags: fms-hf-tuning's forms parse, and bad input is a ConfigError naming the flag."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tuning_core.config import load_train_config
from tuning_core.config.config import Config
from tuning_core.errors import ConfigError
from tuning_core_packing.arguments import PackingArguments, PackingSettings, resolve

BASE = ["--model_name_or_path", "m", "--output_dir", "out"]


def test_padding_free_alone_and_fms_form_enable_it():
    for extra in (["--padding_free"], ["--padding_free", "huggingface"]):
        cfg = load_train_config(BASE + extra)
        assert cfg.padding_free == ["huggingface"]
        assert resolve(cfg) == PackingSettings(padding_free=True, multipack_bins=None)
    assert resolve(load_train_config(BASE)) == PackingSettings(padding_free=False, multipack_bins=None)


def test_fms_json_form(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(
        json.dumps({"model_name_or_path": "m", "output_dir": "o", "padding_free": ["huggingface"], "multipack": [1]})
    )
    cfg = load_train_config(["--config", str(f)])
    assert resolve(cfg) == PackingSettings(padding_free=True, multipack_bins=1)


def test_multipack_alone_plans_for_the_world_size():
    cfg = load_train_config(BASE + ["--padding_free", "--multipack"])
    assert cfg.multipack == []
    assert resolve(cfg).multipack_bins == 1  # one process here


def test_unknown_padding_free_method_names_the_flag():
    with pytest.raises(ConfigError, match="padding_free"):
        load_train_config(BASE + ["--padding_free", "flash"])


def test_multipack_needs_padding_free():
    with pytest.raises(ConfigError, match=r"--multipack needs --padding_free"):
        resolve(load_train_config(BASE + ["--multipack", "1"]))


def test_multipack_must_be_positive():
    with pytest.raises(ConfigError, match="--multipack: the number of processes must be at least 1"):
        resolve(load_train_config(BASE + ["--padding_free", "--multipack", "0"]))


def _config(world_size=1, **fields):
    targs = SimpleNamespace(world_size=world_size, group_by_length=fields.pop("group_by_length", False))
    return Config([PackingArguments(**fields)], training_args=targs)


def test_multipack_must_divide_by_world_size():
    assert resolve(_config(2, padding_free=["huggingface"], multipack=[4])).multipack_bins == 4
    assert resolve(_config(2, padding_free=["huggingface"], multipack=[])).multipack_bins == 2
    with pytest.raises(ConfigError, match="--multipack 3: must be a multiple of the world size 2"):
        resolve(_config(2, padding_free=["huggingface"], multipack=[3]))


def test_processes_that_did_not_join_one_group_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun started 2, but training args saw 1 (CPU without --use_cpu)
    with pytest.raises(ConfigError, match="--multipack: 2 processes were launched but training runs as 1"):
        resolve(_config(1, padding_free=["huggingface"], multipack=[2]))


def test_group_by_length_conflicts_with_multipack():
    with pytest.raises(ConfigError, match="--group_by_length"):
        resolve(_config(1, padding_free=["huggingface"], multipack=[1], group_by_length=True))


def test_prompt_tuning_is_refused():
    with pytest.raises(ConfigError, match="--padding_free cannot be combined with --peft_method pt"):
        resolve(load_train_config(BASE + ["--padding_free", "--peft_method", "pt"]))


def test_entry_point_module_does_not_import_torch():
    code = (
        "import sys, tuning_core_packing.plugin; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
