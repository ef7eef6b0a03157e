"""Discovery through entry points, the TUNING_CORE_PLUGINS filter, loud failures, `tuning-core plugins`."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tuning_core.plugins import PluginLoadError, build_plugin_manager

from .helpers import cli


def make_distribution(root, name, module_source, entry_name):
    """A real installed distribution on sys.path: dist-info with an entry point, and its module."""
    pkg = name.replace("-", "_") + "_mod"
    (root / f"{pkg}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[tuning_core]\n{entry_name} = {pkg}\n")
    return pkg


GOOD = """
from tuning_core.plugin_api import hookimpl
@hookimpl
def tuning_core_validate_config(config):
    pass
"""


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    make_distribution(tmp_path, "good-plugin", GOOD, "good")
    make_distribution(tmp_path, "broken-plugin", "import no_such_module_anywhere\n", "broken")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_filter_loads_only_named_plugins(fake_plugins, monkeypatch):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "good")
    pm, infos = build_plugin_manager()
    assert "good" in infos and "broken" not in infos
    assert infos["good"].distribution == "good-plugin" and infos["good"].version == "1.2.3"
    assert pm.has_plugin("builtin.model_loader")  # built-ins always load


def test_empty_filter_loads_none(fake_plugins, monkeypatch):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "")
    _, infos = build_plugin_manager()
    assert all(info.builtin for info in infos.values())


def test_broken_plugin_is_a_loud_error_naming_it(fake_plugins, monkeypatch):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "good,broken")
    with pytest.raises(PluginLoadError) as e:
        build_plugin_manager()
    msg = str(e.value)
    assert "'broken'" in msg and "broken-plugin" in msg and "no_such_module_anywhere" in msg


def test_filter_naming_a_missing_plugin_is_an_error(monkeypatch):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "nope")
    with pytest.raises(PluginLoadError, match="nope"):
        build_plugin_manager()


def test_broken_plugin_through_cli_exits_nonzero_without_traceback(fake_plugins):
    env = {**os.environ, "TUNING_CORE_PLUGINS": "broken", "PYTHONPATH": str(fake_plugins)}
    proc = cli("plugins", env=env)
    assert proc.returncode == 3
    assert "broken-plugin" in proc.stderr and "Traceback" not in proc.stderr


def test_third_party_example_plugin_is_listed():
    env = {**os.environ, "TUNING_CORE_PLUGINS": "step_counter"}
    proc = cli("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    row = rows["step_counter"]
    assert row["distribution"] == "tuning-core-step-counter" and not row["builtin"]
    assert row["flags"] == ["--step_counter_file"]
    assert "tuning_core_trainer_callbacks" in row["hooks"]
    assert rows["builtin.peft"]["builtin"] and "--peft_method" in rows["builtin.peft"]["flags"]


def test_third_party_example_plugin_runs_during_training(tiny_llama, twitter_data, tmp_path, plugins_enabled):
    from tuning_core.pipeline import run_training

    from .helpers import train_args

    plugins_enabled("step_counter")
    result = run_training(
        train_args(
            tiny_llama, twitter_data, tmp_path, "--peft_method", "lora", "--step_counter_file", "steps.json", steps=3
        )
    )
    assert json.loads((tmp_path / "steps.json").read_text()) == {"steps_seen": 3, "global_step": 3}
    assert any(line.startswith("[step_counter] callbacks StepCounter") for line in result.banner)


@pytest.mark.parametrize("command", [["--help"], ["plugins"]])
def test_cli_stays_light(command):
    """--help and plugins must not import torch or transformers (every installed plugin loaded)."""
    code = (
        f"import sys; from tuning_core.cli import main; rc = main({command!r}); "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_unknown_command_and_missing_plugin_command():
    proc = cli("quantize", env={**os.environ, "TUNING_CORE_PLUGINS": ""})
    assert proc.returncode == 1
    assert "pip install 'tuning-core[peft-gptq]'" in proc.stderr
    proc = cli("trian", env={**os.environ, "TUNING_CORE_PLUGINS": ""})
    assert proc.returncode == 1 and "unknown command 'trian'" in proc.stderr


def test_missing_plugin_flag_exits_2_with_install_hint():
    proc = cli("train", "--padding_free", env={**os.environ, "TUNING_CORE_PLUGINS": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("--padding_free needs the packing plugin: pip install 'tuning-core[packing]'")
    assert "Traceback" not in proc.stderr
