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
        raise ConfigError(
            f"--use_flash_attn conflicts with --attn_implementation {config.attn_implementation}; pass one of them"
        )
    check_quantization(config)


def resolve_dtype(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def resolve_attention(config) -> str:
    """sdpa everywhere unless flash attention is asked for (or available on a GPU and not refused).

    "Flash attention" is --flash_attn_implementation (default flash_attention_2), as in fms-hf-tuning.
    """
    flash_impl = config.flash_attn_implementation
    if config.attn_implementation:
        if flash_impl and flash_impl != config.attn_implementation:
            raise ConfigError(
                f"--flash_attn_implementation {flash_impl} conflicts with --attn_implementation "
                f"{config.attn_implementation}; pass one of them"
            )
        return config.attn_implementation
    want = config.use_flash_attn
    if want is None and flash_impl:
        want = True  # naming an implementation asks for it
    impl = flash_impl or "flash_attention_2"
    missing = _missing_for(impl)
    if want and missing:
        raise ConfigError(
            f"--flash_attn_implementation {impl} needs {missing}; drop --use_flash_attn/"
            "--flash_attn_implementation to use sdpa"
        )
    if want or (want is None and not missing):
        return impl
    return "sdpa"


_FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


def _missing_for(impl: str) -> str | None:
    """What this machine lacks for an attention implementation, or None."""
    import importlib.util

    if "/" in impl:  # a hub kernel repository: code we would have to download
        return "a kernel from the Hugging Face hub, which tuning-core never downloads"
    package = _FLASH_PACKAGES.get(impl)
    if package is None:
        return None  # sdpa, eager, flex_attention...: transformers checks the name itself
    import torch

    if not torch.cuda.is_available():
        return f"CUDA and the {package} package"
    return None if importlib.util.find_spec(package) else f"the {package} package"


def check_quantization(config) -> None:
    """--quantization_method mxfp4: the checkpoint must be MXFP4 and dequantized (the trainable form)."""
    if config.quantization_method == "none":
        return
    if not config.dequantize:
        raise ConfigError(
            "--dequantize false keeps gpt-oss experts in MXFP4, which only runs through kernels "
            "fetched from the Hugging Face hub; tuning-core trains dequantized weights: drop "
            "--dequantize false"
        )
    path = Path(config.model_name_or_path or "")
    if (path / "config.json").is_file():
        import json

        quant = json.loads((path / "config.json").read_text(encoding="utf-8")).get("quantization_config") or {}
        if quant.get("quant_method") != "mxfp4":
            found = quant.get("quant_method") or "not quantized"
            raise ConfigError(
                f"--quantization_method mxfp4: {path / 'config.json'} says the checkpoint is "
                f"{found}, not MXFP4; drop --quantization_method"
            )


def _supports_sdpa(path: str, config, kwargs: dict) -> bool:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    try:
        model_config = AutoConfig.from_pretrained(path, trust_remote_code=config.trust_remote_code, **kwargs)
        return bool(getattr(MODEL_FOR_CAUSAL_LM_MAPPING[type(model_config)], "_supports_sdpa", True))
    except (OSError, ValueError, KeyError):
        return True  # the load itself reports what is wrong


def load_tokenizer(config):
    from transformers import AutoTokenizer

    path = config.tokenizer_name_or_path or config.model_name_or_path
    try:
        return AutoTokenizer.from_pretrained(
            path, trust_remote_code=config.trust_remote_code, **cache_kwargs(config, path)
        )
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from '{path}'{_in_cache(config, path)}: {first_line(e)}") from None


def cache_kwargs(config, path: str) -> dict:
    """A name that is not a local folder resolves in --cache_dir, offline: never from the hub."""
    cache_dir = getattr(config, "cache_dir", None)
    if not cache_dir or Path(path).exists():
        return {}
    return {"cache_dir": cache_dir, "local_files_only": True}


def _in_cache(config, path: str) -> str:
    return f" (looked in --cache_dir {config.cache_dir})" if cache_kwargs(config, path) else ""


@hookimpl(trylast=True)
def tuning_core_load_model(config, purpose):
    from transformers import AutoModelForCausalLM

    path = config.model_name_or_path
    if not Path(path).exists() and not getattr(config, "cache_dir", None):
        raise UserError(
            f"--model_name_or_path '{path}' does not exist (models load from local paths, or from "
            "a Hugging Face cache folder given with --cache_dir)"
        )
    dtype = resolve_dtype(config.torch_dtype)
    attn = resolve_attention(config)
    kwargs = cache_kwargs(config, path)
    if attn == "sdpa" and not config.attn_implementation and not _supports_sdpa(path, config, kwargs):
        attn = "eager"  # our default, not the user's choice: gpt-oss, for one, has no sdpa path
    quant = ""
    if getattr(config, "quantization_method", "none") == "mxfp4":
        from transformers import Mxfp4Config

        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
        quant = ", MXFP4 dequantized"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, attn_implementation=attn, trust_remote_code=config.trust_remote_code, **kwargs
        )
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot load a causal language model from '{path}'{_in_cache(config, path)}: {first_line(e)}"
        ) from None
    tokenizer = load_tokenizer(config)
    return LoadedModel(model, tokenizer, f"{type(model).__name__}, {str(dtype).replace('torch.', '')}, {attn}{quant}")
