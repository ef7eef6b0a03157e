"""Tiny adapters made with peft directly, shaped like what training saves."""

from __future__ import annotations

import shutil

import pytest

PROMPTS = [
    "### Text: my order never came",
    "### Text: great service today, thanks",
    "### Text: the app crashes every single time I open it on my phone",
    "### Text: ok",
]


@pytest.fixture
def prompts():
    """Prompts of different lengths, so batches need padding."""
    return list(PROMPTS)


def _base_with_pad(base_dir):
    """Like training: the Llama-style tokenizer gets a pad token and the embeddings grow by one row."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    tok.add_special_tokens({"pad_token": "<pad>"})
    torch.manual_seed(1)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


@pytest.fixture(scope="session")
def lora_adapter(tiny_llama, tmp_path_factory):
    """A LoRA adapter with non-zero weights, saved with its (pad-extended) tokenizer and embedding rows.

    Returns (adapter_dir, reference): ``reference`` is the in-memory PeftModel it was saved from.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    model, tok = _base_with_pad(tiny_llama)
    torch.manual_seed(2)
    cfg = LoraConfig(
        task_type="CAUSAL_LM",
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
    )  # random A and B, so the adapter changes the outputs
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("lora_adapter")
    peft_model.save_pretrained(out, save_embedding_layers=True)
    tok.save_pretrained(out)
    peft_model.eval()
    return out, peft_model


@pytest.fixture(scope="session")
def pt_adapter(tiny_llama, tmp_path_factory):
    """A prompt-tuning adapter (random virtual tokens); returns (adapter_dir, reference)."""
    import torch
    from peft import PromptTuningConfig, PromptTuningInit, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    torch.manual_seed(3)
    cfg = PromptTuningConfig(task_type="CAUSAL_LM", prompt_tuning_init=PromptTuningInit.RANDOM, num_virtual_tokens=4)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    out = tmp_path_factory.mktemp("pt_adapter")
    peft_model.save_pretrained(out)
    tok.save_pretrained(out)
    peft_model.eval()
    return out, peft_model


@pytest.fixture
def moved_adapter(lora_adapter, tmp_path):
    """A copy of the LoRA adapter whose recorded base model path does not exist (trained elsewhere)."""
    import json

    src, _ = lora_adapter
    dst = tmp_path / "moved_adapter"
    shutil.copytree(src, dst)
    cfg_path = dst / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "machine-that-trained-it" / "base")
    cfg_path.write_text(json.dumps(cfg))
    return dst
