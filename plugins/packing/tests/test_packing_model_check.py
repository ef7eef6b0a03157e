"""patch_model: the KV cache goes off, and models that would leak attention across examples are refused."""

import pytest
import torch
import transformers
from transformers import AttentionInterface, AutoModelForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from tuning_core.errors import ConfigError
from tuning_core_packing.model_check import prepare_model, probe_packed_attention


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gptbigcode", "tiny_mistral", "tiny_granite"])
def test_transformers_models_pass_and_lose_their_cache(fixture, request):
    model = AutoModelForCausalLM.from_pretrained(request.getfixturevalue(fixture), dtype=torch.float32)
    model.train()
    assert model.config.use_cache
    report = prepare_model(model)
    assert model.config.use_cache is False
    assert model.training  # the probe runs in eval mode and restores training mode
    assert any("use_cache=False" in n for n in report.notes)
    assert any("keeps examples apart" in n for n in report.notes)
    assert model.config._attn_implementation == "sdpa_packed"  # sdpa, run per example in padding-free rows
    assert probe_packed_attention(model) < 1e-5


def test_sliding_window_model_keeps_plain_sdpa_and_passes():
    # Per-example causal sdpa would ignore the window, so the switch is not made; transformers' own
    # packed mask (window and example boundaries) is what the probe then checks.
    cfg = transformers.MistralConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        sliding_window=4,
    )
    torch.manual_seed(0)
    model = transformers.MistralForCausalLM(cfg)
    model.set_attn_implementation("sdpa")
    report = prepare_model(model)
    assert model.config._attn_implementation == "sdpa" and not report.replaced


def test_peft_wrapped_model_is_checked_through_the_wrapper(tiny_llama):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"]))
    prepare_model(model)
    assert base.config.use_cache is False


def test_recurrent_model_is_refused():
    # Mamba's state runs from one example into the next in a packed row: no position_ids can stop that.
    cfg = transformers.MambaConfig(
        vocab_size=64, hidden_size=16, state_size=4, num_hidden_layers=2, expand=2, conv_kernel=4
    )
    torch.manual_seed(0)
    model = transformers.MambaForCausalLM(cfg)
    with pytest.raises(ConfigError, match=r"--padding_free: MambaForCausalLM .* does not keep examples apart"):
        prepare_model(model)


def _leaky_attention(module, query, key, value, attention_mask, **kwargs):
    """Plain causal attention that ignores the mask transformers built: attends across packed examples."""
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, None, is_causal=True, **kwargs)


def test_custom_attention_ignoring_the_packing_is_refused():
    AttentionInterface.register("leaky_causal_test", _leaky_attention)
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    model.config._attn_implementation = "leaky_causal_test"
    with pytest.raises(ConfigError, match=r"attention 'leaky_causal_test' does not keep examples apart"):
        prepare_model(model)
    model.config._attn_implementation = "sdpa"  # the same weights with a packing-aware kernel pass
    prepare_model(model)


def test_model_that_rejects_packed_inputs_is_refused():
    class NoKwargs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(16, 4)
            self.config = transformers.PretrainedConfig(use_cache=True)

        def get_input_embeddings(self):
            return self.emb

        def forward(self, input_ids):
            return self.emb(input_ids)

    with pytest.raises(ConfigError, match=r"--padding_free: NoKwargs .* cannot run a padding-free batch"):
        prepare_model(NoKwargs())
