"""The trained-positions loss path equals the model's own full loss, value and gradients."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from tuning_core.loss import restrict_to_trained_positions, supports_trained_positions


def batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    mask[2, 5:] = 0
    labels = ids.clone()
    labels[:, :4] = -100  # masked prompt
    labels[mask == 0] = -100
    labels[2, 4] = -100  # a row with a single trained... none left: all masked
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_gptbigcode", "tiny_granite", "tiny_mixtral"])
@pytest.mark.parametrize("num_items", [None, 9])
def test_same_loss_and_gradients(arch, num_items, request):
    path = request.getfixturevalue(arch)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if arch == "tiny_granite":
        model.config.logits_scaling = 4.0  # the scaling must survive the restriction
    assert supports_trained_positions(model)
    inputs = batch(model.config.vocab_size)
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}

    full = model(**inputs, **extra).loss
    full.backward()
    grads_full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    restricted = model(**restrict_to_trained_positions(dict(inputs)), **extra).loss
    restricted.backward()
    torch.testing.assert_close(restricted, full, rtol=1e-6, atol=1e-6)
    for name, p in model.named_parameters():
        if name in grads_full:
            torch.testing.assert_close(p.grad, grads_full[name], rtol=1e-5, atol=1e-6, msg=name)


def test_prompt_tuning_keeps_the_plain_forward(tiny_llama):
    from peft import PromptTuningConfig, get_peft_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
    )
    assert not supports_trained_positions(model)


def test_lora_model_supports_it(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(task_type="CAUSAL_LM", target_modules=["q_proj"])
    )
    assert supports_trained_positions(model)
