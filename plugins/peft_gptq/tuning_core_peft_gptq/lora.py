"""LoRA on a quantized base: k-bit preparation without peft's fp32 upcast, then peft's own LoRA."""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, convert_on_final_save, first_line, lora_config_from
from tuning_core_peft_gptq.qlinear import QuantLinear


def prepare_for_kbit_training(model, gradient_checkpointing: bool) -> None:
    """Freeze the base and make checkpointed blocks see an input that requires grad.

    peft's prepare_model_for_kbit_training also casts every float16/bfloat16
    parameter that is not quantized (embeddings, norms, lm_head) to float32: a
    copy of those weights at twice the size, and float32 matmuls in lm_head on
    every step. The LoRA weights, the only trainable ones, are kept in float32
    by peft anyway (autocast_adapter_dtype), which is all mixed precision needs.
    """
    model.requires_grad_(False)
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def gptq_target_modules(model, targets):
    """all-linear on a GPTQ model means the quantized layers only (fms-hf-tuning's rule): never lm_head,
    nor a float linear the quantizer left alone (e.g. a MoE router)."""
    if targets != "all-linear":
        return targets
    names = {n for n, m in model.named_modules() if isinstance(m, QuantLinear)}
    others = {
        n.rpartition(".")[2]
        for n, m in model.named_modules()
        if n and not isinstance(m, QuantLinear) and hasattr(m, "in_features")
    }
    leaves = {n.rpartition(".")[2] for n in names}
    # Leaf names (q_proj, ...) read better in adapter_config.json; full names only when a leaf is ambiguous.
    return sorted(leaves) if not (leaves & others) else sorted(names)


def lora_config(config, model, gptq: bool, tokenizer=None):
    cfg = lora_config_from(config, model, tokenizer)
    if gptq:
        cfg.target_modules = gptq_target_modules(model, cfg.target_modules)
    return cfg


def add_lora(config, model, gptq: bool, tokenizer=None):
    from peft import get_peft_model

    targs = config.training_args
    prepare_for_kbit_training(model, bool(getattr(targs, "gradient_checkpointing", False)))
    try:
        peft_model = get_peft_model(model, lora_config(config, model, gptq, tokenizer))
    except ValueError as e:
        flag = "--auto_gptq" if gptq else "--bnb_qlora"
        raise ConfigError(f"cannot apply LoRA with {flag}: {first_line(e)}") from None
    convert_on_final_save(peft_model, config)  # PiSSA/OLoRA on a QLoRA base: loadable onto the original base
    return peft_model
