"""One-line errors survive exceptions with an empty message (str(e).splitlines()[0] raised IndexError)."""

from types import SimpleNamespace

import pytest

from tuning_core.errors import ConfigError, first_line


@pytest.mark.parametrize(
    "error,line",
    [
        (ValueError(""), "ValueError"),
        (KeyError(), "KeyError"),
        (ValueError("\n  \nfirst\nsecond"), "first"),
        (OSError("x"), "x"),
    ],
)
def test_first_line(error, line):
    assert first_line(error) == line


def test_peft_error_with_an_empty_message_is_a_config_error(monkeypatch):
    import peft

    from tuning_core.builtin import peft as builtin_peft

    def fails(model, config):
        raise ValueError("")

    monkeypatch.setattr(builtin_peft, "lora_config_from", lambda config, model, tokenizer=None: None)
    monkeypatch.setattr(peft, "get_peft_model", fails)
    with pytest.raises(ConfigError, match=r"^cannot apply lora: ValueError$"):
        builtin_peft.tuning_core_augment_model(SimpleNamespace(peft_method="lora"), object(), None)
