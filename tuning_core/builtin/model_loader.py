"""Built-in model loader: transformers' AutoModelForCausalLM, last in line for the load hook."""

from __future__ import annotations

from pathlib import Path

from tuning_core.config.arguments import ModelArguments
from tuning_core.errors import ConfigError, UserError, first_line
from tuning_core.plugin_api import LoadedModel, hookimpl


@hookimpl
def tuning_core_config_classes():
    return [ModelArguments]


@hookimpl
def tuning_core_validate_config(config):
    if not config.model_name_or_path:
        raise ConfigError("--model_name_or_path is required")
    if config.use_flash_attn and config.attn_implementation not in (None, "flash_attention_2"):
        raise ConfigError("--use_flash_attn conflicts with --attn_implementation "
                          f"{config.attn_implementation}; pass one of them")


def resolve_dtype(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def resolve_attention(config) -> str:
    """sdpa everywhere unless flash-attn is asked for (or available on a GPU and not refused)."""
    if config.attn_implementation:
        return config.attn_implementation
    import importlib.util

    import torch

    has_flash = torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
    if config.use_flash_attn and not has_flash:
        raise ConfigError("--use_flash_attn needs CUDA and the flash-attn package; drop the flag to use sdpa")
    if config.use_flash_attn or (config.use_flash_attn is None and has_flash):
        return "flash_attention_2"
    return "sdpa"


def load_tokenizer(config):
    from transformers import AutoTokenizer

    path = config.tokenizer_name_or_path or config.model_name_or_path
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from '{path}': {first_line(e)}") from None


@hookimpl(trylast=True)
def tuning_core_load_model(config, purpose):
    from transformers import AutoModelForCausalLM

    path = config.model_name_or_path
    if not Path(path).exists():
        raise UserError(f"--model_name_or_path '{path}' does not exist (models load from local paths only)")
    dtype = resolve_dtype(config.torch_dtype)
    attn = resolve_attention(config)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, attn_implementation=attn, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a causal language model from '{path}': {first_line(e)}") from None
    tokenizer = load_tokenizer(config)
    return LoadedModel(model, tokenizer, f"{type(model).__name__}, {str(dtype).replace('torch.', '')}, {attn}")
