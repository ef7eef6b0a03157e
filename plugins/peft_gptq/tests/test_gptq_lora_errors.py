"""A LoRA failure with an empty message is still a one-line ConfigError naming the flag."""

from types import SimpleNamespace

import pytest

from tuning_core.plugin_api import ConfigError
from tuning_core_peft_gptq import lora


def test_empty_peft_error_names_the_flag(monkeypatch):
    import peft

    def fails(model, config):
        raise ValueError("")

    monkeypatch.setattr(lora, "prepare_for_kbit_training", lambda model, checkpointing: None)
    monkeypatch.setattr(lora, "lora_config", lambda config, model, gptq, tokenizer=None: None)
    monkeypatch.setattr(peft, "get_peft_model", fails)
    config = SimpleNamespace(training_args=SimpleNamespace(gradient_checkpointing=False))
    with pytest.raises(ConfigError, match=r"^cannot apply LoRA with --auto_gptq: ValueError$"):
        lora.add_lora(config, object(), gptq=True)
