"""Entry point of tuning-core-peft-gptq: GPTQ-LoRA, QLoRA and `tuning-core quantize`.

Import-light by contract: torch, transformers and peft load inside the hooks.
"""

from __future__ import annotations

from tuning_core.plugin_api import CliCommand, hookimpl
from tuning_core_peft_gptq.arguments import QuantizedLoraArguments, bnb_quant_type, gptq_kernel


@hookimpl
def tuning_core_config_classes():
    return [QuantizedLoraArguments]


@hookimpl
def tuning_core_optional_backends():
    return {"bitsandbytes": ["bnb_qlora"]}  # peft would import it (and it probes hardware) in every LoRA run


@hookimpl
def tuning_core_validate_config(config):
    from tuning_core_peft_gptq.validation import validate

    validate(config)


@hookimpl
def tuning_core_load_model(config, purpose):
    from tuning_core_peft_gptq import load_hook

    kernel = gptq_kernel(config)
    if purpose == "train":
        if kernel:
            return load_hook.load_gptq(config, kernel)
        quant_type = bnb_quant_type(config)
        if quant_type:
            return load_hook.load_bnb(config, quant_type)
        return None
    from tuning_core_peft_gptq.checkpoint import read_gptq_format

    # Inference: a GPTQ base is ours whatever the flags say (transformers cannot load it without GPTQModel).
    if config.model_name_or_path and read_gptq_format(config.model_name_or_path) is not None:
        return load_hook.load_gptq(config, kernel)
    return None


@hookimpl
def tuning_core_augment_model(config, model, tokenizer):
    gptq = gptq_kernel(config) is not None
    if not gptq and bnb_quant_type(config) is None:
        return None
    from tuning_core_peft_gptq.lora import add_lora

    return add_lora(config, model, gptq, tokenizer)


def _quantize_arguments(parser):
    from tuning_core_peft_gptq.cli import add_arguments

    add_arguments(parser)


def _quantize_run(args) -> int:
    from tuning_core_peft_gptq.cli import run

    return run(args)


@hookimpl
def tuning_core_cli_commands():
    return [
        CliCommand(
            name="quantize",
            help="Quantize a float checkpoint to a 4-bit GPTQ checkpoint (GPTQ with calibration data).",
            add_arguments=_quantize_arguments,
            run=_quantize_run,
        )
    ]
