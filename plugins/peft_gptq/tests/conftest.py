"""Fixtures for the GPTQ / QLoRA plugin tests: GPTQ checkpoints quantized from the shared tiny models."""

import pytest
from peft_gptq_helpers import calibration_texts


@pytest.fixture(scope="session")
def gptq_checkpoint(tmp_path_factory, request):
    """gptq_checkpoint(arch, group_size, desc_act, sym, fmt) -> path of a GPTQ checkpoint (built once)."""
    cache = {}

    def make(arch="llama", group_size=32, desc_act=False, sym=True, fmt="gptq"):
        key = (arch, group_size, desc_act, sym, fmt)
        if key not in cache:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from tuning_core_peft_gptq.quantizer import (
                QuantizeOptions,
                calibration_batches,
                quantize_model,
                save_quantized,
            )

            src = request.getfixturevalue(f"tiny_{arch.replace('_', '')}")
            tok = AutoTokenizer.from_pretrained(src)
            model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
            opts = QuantizeOptions(group_size=group_size, desc_act=desc_act, sym=sym, checkpoint_format=fmt)
            results = quantize_model(
                model, calibration_batches(tok, calibration_texts(), 16, 64), opts, log=lambda _: None
            )
            out = tmp_path_factory.mktemp(f"gptq_{arch}_{group_size}_{int(desc_act)}_{int(sym)}_{fmt}")
            save_quantized(model, results, opts.format(), out, tok)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def gptq_llama(gptq_checkpoint):
    """The tiny Llama as a 4-bit GPTQ checkpoint, group 32, desc_act on."""
    return gptq_checkpoint("llama", 32, True)
