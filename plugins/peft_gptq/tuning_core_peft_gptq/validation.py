"""Config checks that run before any weight is read: clear errors for combinations that cannot work."""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError
from tuning_core_peft_gptq.arguments import bnb_quant_type, gptq_kernel
from tuning_core_peft_gptq.checkpoint import read_gptq_format

# What each path computes in. CPU float16 matmuls are slow and lose precision; fms' triton_v2
# served float16 only, ours adds bfloat16 and float32.
SERVED = {
    ("cuda", "triton_v2"): ("float16", "bfloat16", "float32"),
    ("cuda", "torch"): ("float16", "bfloat16", "float32"),
    ("cuda", "bnb"): ("float16", "bfloat16", "float32"),
    ("cpu", "triton_v2"): ("float32", "bfloat16"),
    ("cpu", "torch"): ("float32", "bfloat16"),
    ("cpu", "bnb"): ("float32", "bfloat16"),
}


def _device(config) -> str:
    import torch

    targs = config.training_args
    use_cpu = bool(getattr(targs, "use_cpu", False)) if targs is not None else False
    return "cuda" if torch.cuda.is_available() and not use_cpu else "cpu"


def resolved_dtype_name(config, device: str) -> str:
    """torch_dtype with "auto" resolved the way the core's loader resolves it."""
    name = config.torch_dtype
    if name != "auto":
        return name
    if device == "cpu":
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _check_dtype(config, path: str, flag: str) -> None:
    device = _device(config)
    dtype = resolved_dtype_name(config, device)
    served = SERVED[(device, path)]
    if dtype not in served:
        raise ConfigError(
            f"{flag} on {device.upper()} cannot compute in {dtype}: pass --torch_dtype "
            f"{' or '.join(served)}" + (" (and drop --fp16)" if dtype == "float16" else "")
        )
    if device == "cuda" and dtype == "bfloat16":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ConfigError(f"{flag}: this GPU has no bfloat16 support: pass --torch_dtype float16")


def _single(config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, (list, tuple)) and len(value) > 1:
        raise ConfigError(f"--{name} takes one value, got {' '.join(value)}")


def validate(config) -> None:
    _single(config, "auto_gptq")
    _single(config, "bnb_qlora")
    kernel, quant_type = gptq_kernel(config), bnb_quant_type(config)
    path = config.model_name_or_path
    if kernel is None and quant_type is None:
        fmt = read_gptq_format(path) if path else None
        if fmt is not None:
            raise ConfigError(
                f"{path} is a GPTQ checkpoint: add --auto_gptq triton_v2 --peft_method lora to train LoRA on it"
            )
        return
    if kernel and quant_type:
        raise ConfigError("--auto_gptq and --bnb_qlora are two ways to quantize the base: pass only one")
    flag = f"--auto_gptq {kernel}" if kernel else f"--bnb_qlora {quant_type}"
    if config.peft_method != "lora":
        raise ConfigError(
            f"{flag} trains LoRA adapters on a frozen 4-bit base: add --peft_method lora "
            f"(got --peft_method {config.peft_method})"
        )
    fmt = read_gptq_format(path)
    if kernel:
        if fmt is None:
            raise ConfigError(
                f"--auto_gptq needs a GPTQ checkpoint, and {path} has no quantize_config.json "
                "(nor a gptq quantization_config): quantize it first with "
                "`tuning-core quantize`, or use --bnb_qlora nf4 to quantize on load"
            )
        if fmt.problems():
            raise ConfigError(
                f"--auto_gptq: {path} is a GPTQ checkpoint this plugin cannot serve: {'; '.join(fmt.problems())}"
            )
        _check_dtype(config, kernel, flag)
        _check_lora_options(config, flag)
    else:
        if fmt is not None:
            raise ConfigError(
                f"--bnb_qlora quantizes a float checkpoint, but {path} is already GPTQ-quantized: "
                "use --auto_gptq triton_v2"
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("--bnb_qlora needs bitsandbytes: pip install 'tuning-core-peft-gptq[qlora]'")
        _check_dtype(config, "bnb", flag)


def _check_lora_options(config, flag: str) -> None:
    """LoRA options that need the base's float weights, which a GPTQ base only holds packed."""

    def option(name):
        return getattr(config, name) if config.has(name) else None

    if option("use_dora"):
        raise ConfigError(
            f"--use_dora is not supported with {flag}: DoRA needs the base weights' norms, and a "
            "GPTQ base holds them packed in 4 bits; use plain LoRA or --bnb_qlora nf4"
        )
    init = option("init_lora_weights")
    if isinstance(init, str) and init != "gaussian":
        raise ConfigError(
            f"--init_lora_weights {init} is not supported with {flag}: it decomposes the base "
            "weights, which are packed in 4 bits here; use true or gaussian"
        )
