"""Built-in PEFT: LoRA, Activated LoRA, prompt tuning, or full fine-tuning (peft_method none)."""

from __future__ import annotations

import logging

from tuning_core.builtin import lora_options
from tuning_core.config.arguments import LoraArguments, PeftArguments, PromptTuningArguments
from tuning_core.config.lora_fields import lora_options_class
from tuning_core.errors import ConfigError, first_line
from tuning_core.plugin_api import hookimpl


@hookimpl
def tuning_core_config_classes():
    return [PeftArguments, LoraArguments, lora_options_class(), PromptTuningArguments]


@hookimpl
def tuning_core_validate_config(config):
    if config.peft_method in lora_options.LORA_METHODS and config.r <= 0:
        raise ConfigError(f"--r must be a positive integer, got {config.r}")
    lora_options.check(config)
    targs = getattr(config, "training_args", None)
    if config.peft_method == "alora" and targs is not None and targs.save_strategy != "no":
        # fms-hf-tuning's rule for aLoRA: no intermediate checkpoints; the final adapter goes to save_model_dir.
        from transformers.trainer_utils import IntervalStrategy

        targs.save_strategy = IntervalStrategy.NO
        logging.getLogger("tuning_core").warning(
            "--peft_method alora: no intermediate checkpoints (fms-hf-tuning's rule); the adapter is saved to "
            "--save_model_dir when training ends"
        )
    if config.peft_method == "alora" and not config.save_model_dir:
        raise ConfigError(
            "--peft_method alora saves no intermediate checkpoints (as in fms-hf-tuning): pass "
            "--save_model_dir for the trained adapter"
        )
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
        raise ConfigError(
            f"no default LoRA target modules for architecture '{model_type}': pass --target_modules "
            "(module names, or all-linear)"
        )
    return list(defaults)


def lora_config_from(config, model, tokenizer=None):
    """The peft.LoraConfig for this run, every LoRA option included (reused by plugins that wrap other base
    layers). aLoRA needs the tokenizer for its invocation ids."""
    from peft import LoraConfig

    kwargs = lora_options.lora_kwargs(config, resolve_target_modules(config.target_modules, model), model)
    if config.peft_method == "alora":
        if tokenizer is None:
            raise ConfigError("--peft_method alora: this model loader does not support Activated LoRA")
        kwargs["alora_invocation_tokens"] = lora_options.invocation_tokens(config, tokenizer)
    embeddings_saved = any(m in (kwargs.get("modules_to_save") or []) for m in ("embed_tokens", "lm_head"))
    if tokenizer is not None and kwargs.get("trainable_token_indices") is None and not embeddings_saved:
        from tuning_core.builtin.tokens import new_token_adapter_indices

        # Tokens this run added: their rows train and are saved in the adapter, the way peft expects.
        kwargs["trainable_token_indices"] = new_token_adapter_indices(model, tokenizer)
    try:
        return LoraConfig(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"invalid LoRA options: {str(e).strip().splitlines()[0]}") from None


def prompt_tuning_config_from(config, model):
    from peft import PromptTuningConfig, PromptTuningInit

    kwargs = {}
    if config.prompt_tuning_init == "TEXT":
        kwargs = dict(
            prompt_tuning_init_text=config.prompt_tuning_init_text,
            tokenizer_name_or_path=config.tokenizer_name_or_path or config.model_name_or_path,
        )
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

    peft_config = (
        lora_config_from(config, model, tokenizer)
        if config.peft_method in lora_options.LORA_METHODS
        else prompt_tuning_config_from(config, model)
    )
    try:
        peft_model = get_peft_model(model, peft_config)
    except ValueError as e:
        raise ConfigError(f"cannot apply {config.peft_method}: {first_line(e)}") from None
    convert_on_final_save(peft_model, config)
    return peft_model


def convert_on_final_save(peft_model, config) -> None:
    """PiSSA/OLoRA rewrite the base weights they start from. The final adapter is converted (peft's
    path_initial_model_for_weight_conversion) so that it loads onto the original base with plain peft;
    checkpoints stay unconverted, so training resumes from them."""
    cfg = peft_model.peft_config.get("default")
    init = getattr(cfg, "init_lora_weights", True)
    if not (isinstance(init, str) and init.startswith(("pissa", "olora"))):
        return
    from pathlib import Path

    targs = config.training_args
    init_dir = Path(targs.output_dir) / "initial_adapter"
    cfg.init_lora_weights = True
    try:
        peft_model.save_pretrained(str(init_dir), is_main_process=targs.process_index == 0)
    finally:
        cfg.init_lora_weights = init
    original = peft_model.save_pretrained

    def save_pretrained(save_directory, **kwargs):
        if not Path(save_directory).name.startswith(("checkpoint-", "tmp-checkpoint-")):
            kwargs.setdefault("path_initial_model_for_weight_conversion", str(init_dir))
        return original(save_directory, **kwargs)

    peft_model.save_pretrained = save_pretrained
