"""Built-in PEFT: LoRA, prompt tuning, or full fine-tuning (peft_method none)."""

from __future__ import annotations

from tuning_core.config.arguments import LoraArguments, PeftArguments, PromptTuningArguments
from tuning_core.errors import ConfigError, first_line
from tuning_core.plugin_api import hookimpl


@hookimpl
def tuning_core_config_classes():
    return [PeftArguments, LoraArguments, PromptTuningArguments]


@hookimpl
def tuning_core_validate_config(config):
    if config.peft_method == "lora" and config.r <= 0:
        raise ConfigError(f"--r must be a positive integer, got {config.r}")
    if config.peft_method == "pt" and config.num_virtual_tokens <= 0:
        raise ConfigError(f"--num_virtual_tokens must be positive, got {config.num_virtual_tokens}")


def resolve_target_modules(target_modules: list[str] | None, model) -> list[str] | str:
    """fms-hf-tuning's rules: all-linear wins over everything (lm_head included); else names as given."""
    if target_modules:
        if "all-linear" in target_modules:
            return "all-linear"
        return list(target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(model.config, "model_type", None)
    defaults = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    if not defaults:
        raise ConfigError(f"no default LoRA target modules for architecture '{model_type}': pass --target_modules "
                          "(module names, or all-linear)")
    return list(defaults)


def lora_config_from(config, model):
    """The peft.LoraConfig for this run (reused by plugins that wrap other base layers)."""
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias=config.bias,
        target_modules=resolve_target_modules(config.target_modules, model),
    )


def prompt_tuning_config_from(config, model):
    from peft import PromptTuningConfig, PromptTuningInit

    kwargs = {}
    if config.prompt_tuning_init == "TEXT":
        kwargs = dict(prompt_tuning_init_text=config.prompt_tuning_init_text,
                      tokenizer_name_or_path=config.tokenizer_name_or_path or config.model_name_or_path)
    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        prompt_tuning_init=PromptTuningInit[config.prompt_tuning_init],
        num_virtual_tokens=config.num_virtual_tokens,
        **kwargs,
    )


@hookimpl(trylast=True)
def tuning_core_augment_model(config, model, tokenizer):
    if config.peft_method == "none":
        return model
    from peft import get_peft_model

    peft_config = lora_config_from(config, model) if config.peft_method == "lora" else \
        prompt_tuning_config_from(config, model)
    try:
        return get_peft_model(model, peft_config)
    except ValueError as e:
        raise ConfigError(f"cannot apply {config.peft_method}: {first_line(e)}") from None
