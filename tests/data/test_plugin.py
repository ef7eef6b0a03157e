"""The built-in data plugin: its flags reach the core's config and its checks run before anything loads."""

import types

import pytest

from tuning_core.builtin import data as plugin
from tuning_core.data.arguments import DataArguments, unescape
from tuning_core.errors import ConfigError


def test_flags_registered_with_fms_names(plugins_enabled):
    from tuning_core.config import make_config

    plugins_enabled()
    assert plugin.tuning_core_config_classes() == [DataArguments]
    config = make_config(
        training_data_path="d.jsonl", response_template="\\n### Label:", dataset_text_field="output", max_seq_length=128
    )
    assert config.training_data_path == "d.jsonl" and config.max_seq_length == 128
    assert config.section(DataArguments).dataset_text_field == "output"


def test_unescape_is_literal_and_keeps_unicode():
    assert unescape("\\n### Label:") == "\n### Label:"
    assert unescape("a\\tb\\\\n ✓ Ü") == "a\tb\\n ✓ Ü"  # an escaped backslash stays a backslash
    assert unescape("already\nreal") == "already\nreal" and unescape(None) is None


def ns(**values):
    base = {
        f: None
        for f in (
            "dataset_text_field",
            "response_template",
            "data_formatter_template",
            "chat_template",
            "training_data_path",
        )
    }
    base.update(max_seq_length=4096, training_args=None)
    base.update(values)
    return types.SimpleNamespace(**base)


def test_validate_accepts_good_settings():
    plugin.tuning_core_validate_config(ns(dataset_text_field="output", response_template="x"))
    plugin.tuning_core_validate_config(ns(training_args=object(), training_data_path="d.jsonl"))


@pytest.mark.parametrize(
    "values,message",
    [
        (dict(training_args=object()), "--training_data_path is required"),
        (dict(data_formatter_template="{{a}}"), "--data_formatter_template needs --response_template"),
        (dict(response_template=""), "--response_template is empty"),
        (dict(chat_template="{{x}}", dataset_text_field="t"), "--chat_template is for data with 'messages'"),
    ],
)
def test_validate_rejects_with_the_flag_named(values, message):
    with pytest.raises(ConfigError, match=message) as e:
        plugin.tuning_core_validate_config(ns(**values))
    assert e.value.exit_code == 2


def test_cli_command_is_offered(plugins_enabled):
    from tuning_core.cli import plugin_commands

    plugins_enabled()
    assert "data" in plugin_commands()
