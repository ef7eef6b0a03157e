"""The load hook's two paths: a GPTQ checkpoint through our loader, or a float one quantized by bitsandbytes."""

from __future__ import annotations

from tuning_core.plugin_api import LoadedModel, UserError, first_line, load_tokenizer, resolve_attention, resolve_dtype


def load_gptq(config, kernel: str | None) -> LoadedModel:
    from tuning_core_peft_gptq.gptq_loader import GPTQLoadError, load_gptq_model

    dtype = resolve_dtype(config.torch_dtype)
    backend = "torch" if kernel == "torch" else "auto"
    try:
        model, fmt = load_gptq_model(
            config.model_name_or_path,
            dtype=dtype,
            trust_remote_code=config.trust_remote_code,
            backend=backend,
            attn_implementation=resolve_attention(config),
        )
    except (GPTQLoadError, OSError) as e:
        raise UserError(f"cannot load the GPTQ checkpoint '{config.model_name_or_path}': {first_line(e)}") from None
    tokenizer = load_tokenizer(config)
    kernels = "torch dequantize-matmul" if backend == "torch" else "Triton kernel on GPU, torch on CPU"
    desc = (
        f"{type(model).__name__}, {fmt.describe()}, {model.gptq_layers} packed layers, "
        f"{str(dtype).replace('torch.', '')}, {kernels}"
    )
    return LoadedModel(model, tokenizer, desc)


def load_bnb(config, quant_type: str) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = resolve_dtype(config.torch_dtype)
    quant = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    targs = config.training_args
    kwargs = {}
    if torch.cuda.is_available() and not getattr(targs, "use_cpu", False):
        kwargs["device_map"] = {"": getattr(targs, "local_process_index", 0)}  # bnb quantizes as it moves to GPU
    try:
        model = AutoModelForCausalLM.from_pretrained(
            config.model_name_or_path,
            quantization_config=quant,
            dtype=dtype,
            attn_implementation=resolve_attention(config),
            trust_remote_code=config.trust_remote_code,
            **kwargs,
        )
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load '{config.model_name_or_path}' in 4-bit: {first_line(e)}") from None
    desc = (
        f"{type(model).__name__}, bitsandbytes 4-bit {quant_type} (double quantization), "
        f"compute {str(dtype).replace('torch.', '')}"
    )
    return LoadedModel(model, load_tokenizer(config), desc)
