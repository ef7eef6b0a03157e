"""The flag -> plugin table behind the install hint is generated from the plugins' config classes."""

import pytest

from tuning_core.plugin_hints import FLAG_OWNERS, FLAGS_FILE, owners_from_plugins, render


def test_flag_owners_match_the_plugins_config_classes():
    assert FLAGS_FILE.read_text(encoding="utf-8") == render(owners_from_plugins()), (
        "tuning_core/plugin_flags.py is stale: run `python -m tuning_core.plugin_hints --write`"
    )


@pytest.mark.parametrize(
    "flag,value,plugin",
    [
        ("fused_ops_backend", "torch", "fused_ops"),
        ("fast_cross_entropy", "true", "fused_ops"),
        ("fused_loss_chunk_size", "8", "fused_ops"),
        ("padding_free", "huggingface", "packing"),
    ],
)
def test_flag_of_a_missing_plugin_gets_the_install_hint(flag, value, plugin, builtin_plugins_only, tmp_path):
    from tuning_core.config import load_train_config
    from tuning_core.plugin_api import ConfigError

    with pytest.raises(ConfigError) as e:
        load_train_config(
            ["--model_name_or_path", "m", "--output_dir", str(tmp_path), f"--{flag}", value], builtin_plugins_only
        )
    assert str(e.value) == f"--{flag} needs the {plugin} plugin: {_hint(plugin)}"


def test_only_real_flags_are_listed():
    assert "fast_loss" not in FLAG_OWNERS  # a word inside --fast_kernels, never a flag


def _hint(plugin):
    from tuning_core.plugin_hints import install_hint

    return install_hint(plugin)
