"""peft LoraConfig options beyond r/alpha/dropout/targets/bias: checks before the model loads, and the kwargs.

The flags themselves come from tuning_core/config/lora_fields.py (built from
the installed peft). Here: which values tuning-core can honour, and a dry run
of peft's own LoraConfig validation before anything heavy loads.
"""

from __future__ import annotations

from tuning_core.config.lora_fields import given
from tuning_core.errors import ConfigError

LORA_METHODS = ("lora", "alora")

# init_lora_weights values that need a data-driven pass over the model before training that tuning-core does not run.
NEEDS_PREPROCESSING = {
    "eva": "peft's initialize_lora_eva_weights over a data loader",
    "corda": "peft's preprocess_corda over calibration data",
    "lora_ga": "peft's gradient-estimation pass (LoRA-GA)",
}
# Options whose method lives in an extra loss term or at inference only.
UNSUPPORTED = {
    "megatron_config": "tuning-core does not train with Megatron-LM parallel layers",
    "monteclora_config": "MonteCLoRA needs its variational loss (LoraModel._get_monteclora_loss) added to the "
    "training loss, which tuning-core does not do",
    "kasa_config": "KaSA needs its regularisation loss (LoraModel._get_kasa_loss) added to the training loss, "
    "which tuning-core does not do",
    "arrow_config": "Arrow routes between already-trained adapters at inference; it is not a way to train one",
    "use_qalora": "QALoRA needs peft's own GPTQ layers (gptqmodel); tuning-core's --auto_gptq base is not one",
}


def options(config) -> dict:
    """The LoraConfig fields this run sets explicitly, minus the ones tuning-core handles itself."""
    values = given(config)
    for name in ("peft_type", "auto_mapping", "peft_version", "base_model_name_or_path"):
        values.pop(name, None)  # peft sets these itself (fms-hf-tuning accepts and overrides them too)
    if values.get("task_type") is not None:
        values["task_type"] = "CAUSAL_LM"
    return values


def check(config) -> None:
    """Raise ConfigError for a LoRA option tuning-core cannot honour; then let peft check the rest."""
    values = given(config)
    method = config.peft_method
    if method not in LORA_METHODS:
        return
    task_type = values.get("task_type")
    if task_type is not None and str(task_type).upper() != "CAUSAL_LM":
        raise ConfigError(
            f"--task_type {task_type}: tuning-core tunes causal language models; only CAUSAL_LM is accepted"
        )
    peft_type = values.get("peft_type")
    if peft_type is not None and str(peft_type).upper() != "LORA":
        raise ConfigError(
            f"--peft_type {peft_type}: choose the method with --peft_method; with LoRA options only LORA is accepted"
        )
    if values.get("inference_mode"):
        raise ConfigError("--inference_mode true freezes the adapter, leaving nothing to train: drop it")
    for name, why in UNSUPPORTED.items():
        if values.get(name):
            raise ConfigError(f"--{name} is not supported: {why}")
    init = values.get("init_lora_weights")
    if isinstance(init, str) and init in NEEDS_PREPROCESSING:
        raise ConfigError(
            f"--init_lora_weights {init} is not supported: it needs {NEEDS_PREPROCESSING[init]}, "
            "which tuning-core does not run; use true, gaussian, pissa, olora, orthogonal or loftq"
        )
    _check_alora(config, values)
    dry_run(config)


def _check_alora(config, values) -> None:
    tokens = values.get("alora_invocation_tokens")
    text = getattr(config, "alora_invocation_string", None)
    if config.peft_method == "alora":
        if not tokens and not text:
            raise ConfigError(
                "--peft_method alora needs --alora_invocation_string (the text that activates the "
                "adapter, e.g. your response template) or --alora_invocation_tokens"
            )
        if tokens and text:
            raise ConfigError(
                "--alora_invocation_string and --alora_invocation_tokens both set the invocation: pass only one"
            )
    elif tokens or text:
        flag = "--alora_invocation_tokens" if tokens else "--alora_invocation_string"
        raise ConfigError(f"{flag} makes an Activated LoRA: use --peft_method alora")


def dry_run(config) -> None:
    """Construct peft's LoraConfig now, so its own checks fail before the model loads."""
    from peft import LoraConfig

    kwargs = lora_kwargs(config, target_modules=config.target_modules)
    if config.peft_method == "alora" and not kwargs.get("alora_invocation_tokens"):
        kwargs["alora_invocation_tokens"] = [0]  # the real ids need the tokenizer; checked when it loads
    try:
        LoraConfig(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"invalid LoRA options: {str(e).strip().splitlines()[0]}") from None


def lora_kwargs(config, target_modules, model=None) -> dict:
    if isinstance(target_modules, list) and "all-linear" in target_modules:
        target_modules = "all-linear"
    kwargs = dict(
        task_type="CAUSAL_LM",
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias=config.bias,
        target_modules=target_modules,
    )
    kwargs.update(options(config))
    tied = model is not None and bool(getattr(model.config, "tie_word_embeddings", False))
    if (
        tied
        and any(m in (kwargs.get("modules_to_save") or []) for m in ("embed_tokens", "lm_head"))
        and "ensure_weight_tying" not in given(config)
    ):
        kwargs["ensure_weight_tying"] = True  # fms-hf-tuning's rule: keep tied embeddings tied
    return kwargs


def invocation_tokens(config, tokenizer) -> list[int]:
    """aLoRA's invocation ids: given, or the invocation string tokenized without special tokens (fms-hf-tuning)."""
    tokens = given(config).get("alora_invocation_tokens")
    if tokens:
        return list(tokens)
    ids = tokenizer.encode(config.alora_invocation_string, add_special_tokens=False)
    if not ids:
        raise ConfigError(f"--alora_invocation_string {config.alora_invocation_string!r} produced no tokens")
    return ids
