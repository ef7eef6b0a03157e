"""The plugin's flags (fms-hf-tuning's quantized_lora_config). No torch here: imported for --help."""

from __future__ import annotations

from dataclasses import dataclass, field

GPTQ_KERNELS = ("triton_v2", "torch")
BNB_QUANT_TYPES = ("nf4", "fp4")


@dataclass
class QuantizedLoraArguments:
    auto_gptq: list[str] | None = field(
        default=None,
        metadata={
            "help": "GPTQ-LoRA: train LoRA on a 4-bit GPTQ checkpoint (needs --peft_method lora). fms-hf-tuning's "
            "form is `--auto_gptq triton_v2`: the fused Triton dequantize-matmul kernel on a GPU, the torch "
            "dequantize-then-matmul path on CPU. `torch` forces the torch path everywhere.",
            "choices": GPTQ_KERNELS,
            "nargs": "+",
        },
    )
    bnb_qlora: list[str] | None = field(
        default=None,
        metadata={
            "help": "QLoRA: load the base in 4-bit with bitsandbytes (double quantization on) and train LoRA on it "
            '(needs --peft_method lora). `--bnb_qlora nf4`; a config file may say "nf4" or ["nf4"].',
            "choices": BNB_QUANT_TYPES,
            "nargs": "+",
        },
    )


def gptq_kernel(config) -> str | None:
    """'triton_v2' / 'torch', or None when GPTQ-LoRA is off."""
    values = getattr(config, "auto_gptq", None) if config.has("auto_gptq") else None
    return values[0] if values else None


def bnb_quant_type(config) -> str | None:
    """'nf4' / 'fp4', or None when QLoRA is off (the value may be a string or a one-item list)."""
    value = getattr(config, "bnb_qlora", None) if config.has("bnb_qlora") else None
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value
