"""Padding-free batches give the padded run's loss and gradients (float32, within 1e-5).

Each test builds one batch with more than half padding and completion-only
labels, runs it padded (the core's collator) and padding-free (ours) through
the model with the loss normalisation the Trainer uses, and compares.
"""

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, Trainer

from tuning_core.builtin.collator import PaddedCollator
from tuning_core_packing.collator import PaddingFreeCollator
from tuning_core_packing.model_check import prepare_model

TOL = 1e-5


def _rows(vocab, seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    lengths = [6, 40, 9, 13, 4, 22, 7, 11][:n]  # padded to 40: 112 real of 320 slots, 65 % padding
    rows = []
    for k, n_tok in enumerate(lengths):
        ids = torch.randint(3, vocab, (n_tok,), generator=g).tolist()
        labels = list(ids)
        prompt = (k * 3) % n_tok  # completion-only masking, including a fully trained example (prompt 0)
        labels[:prompt] = [-100] * prompt
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def num_items(batch):
    """Trainer's own count of loss tokens for a batch (transformers' _get_num_items_in_batch)."""
    fake = SimpleNamespace(
        model_accepts_loss_kwargs=True,
        compute_loss_func=None,
        _loss_shifts_labels=True,
        args=SimpleNamespace(average_tokens_across_devices=False, world_size=1, n_gpu=0),
        get_tp_size=lambda: 1,
        get_cp_size=lambda: 1,
        get_sp_size=lambda: 1,
    )
    return Trainer._get_num_items_in_batch(fake, [batch], torch.device("cpu"))


def loss_and_grads(model, batch, normalise=True):
    model.zero_grad(set_to_none=True)
    kwargs = {"num_items_in_batch": num_items(batch)} if normalise else {}
    loss = model(**batch, use_cache=False, **kwargs).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _load(path, impl):
    # eval(): GPTBigCode has dropout 0.1, which would draw different masks for differently shaped batches.
    dense = impl == "sdpa_dense_mask"
    model = AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="sdpa" if dense else impl, dtype=torch.float32
    ).eval()
    # What the plugin's patch_model hook does: use_cache off, sdpa -> per-example sdpa, packing probe.
    prepare_model(model, per_example_sdpa=not dense)
    expected = {"sdpa": "sdpa_packed", "sdpa_dense_mask": "sdpa"}.get(impl, impl)
    assert model.config._attn_implementation == expected
    return model


def _assert_same(model, rows, normalise=True):
    padded = PaddedCollator(pad_token_id=0)(rows)
    packed = PaddingFreeCollator()(rows)
    assert num_items(padded) == num_items(packed)
    loss_a, grads_a = loss_and_grads(model, padded, normalise)
    loss_b, grads_b = loss_and_grads(model, packed, normalise)
    assert abs(loss_a.item() - loss_b.item()) <= TOL, (loss_a.item(), loss_b.item())
    assert grads_a.keys() == grads_b.keys() and grads_a
    worst = max((grads_a[k] - grads_b[k]).abs().max().item() for k in grads_a)
    assert worst <= TOL, worst
    assert max(g.abs().max().item() for g in grads_a.values()) > 1e-3  # the comparison is not vacuous


@pytest.mark.parametrize("impl", ["sdpa", "sdpa_dense_mask", "eager"])
@pytest.mark.parametrize("arch", ["llama", "gpt_bigcode"])
def test_loss_and_gradients_equal_padded(arch, impl, request):
    path = request.getfixturevalue({"llama": "tiny_llama", "gpt_bigcode": "tiny_gptbigcode"}[arch])
    model = _load(path, impl)
    rows = _rows(model.config.vocab_size)
    _assert_same(model, rows, normalise=True)
    _assert_same(model, rows, normalise=False)  # mean over targets, as without num_items_in_batch


def test_lora_gradients_equal_padded(tiny_llama):
    from peft import LoraConfig, get_peft_model

    model = _load(tiny_llama, "sdpa")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    for name, p in model.named_parameters():  # non-zero B so that A gets gradients too
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    _assert_same(model, _rows(model.config.vocab_size, seed=1))


@pytest.mark.slow
def test_flex_attention_forward_equals_padded(tiny_llama):
    # torch 2.13 has no FlexAttention backward on CPU, so only the loss is compared. The reference is
    # the padded batch under sdpa: padded flex attention yields NaN on the fully masked padding rows.
    # Three 7-token examples: the shape of the model probe's packed row, so flex compiles once less.
    sdpa, flex = _load(tiny_llama, "sdpa"), _load(tiny_llama, "flex_attention")
    g = torch.Generator().manual_seed(2)
    rows = []
    for prompt in (0, 3, 5):
        ids = torch.randint(3, sdpa.config.vocab_size, (7,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    with torch.no_grad():
        reference = sdpa(**PaddedCollator(0)(rows), use_cache=False).loss
        packed = flex(**PaddingFreeCollator()(rows), use_cache=False).loss
    assert abs(reference.item() - packed.item()) <= TOL


def test_with_kv_cache_on_examples_leak(tiny_llama):
    # Why patch_model turns use_cache off: with a cache object transformers skips packed-sequence
    # detection and the second example attends to the first.
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    model.config.use_cache = True
    rows = _rows(model.config.vocab_size, seed=3)
    with torch.no_grad():
        padded = model(**PaddedCollator(0)(rows)).loss.item()
        leaky = model(**PaddingFreeCollator()(rows)).loss.item()
        prepare_model(model)
        exact = model(**PaddingFreeCollator()(rows)).loss.item()
    assert abs(leaky - padded) > 1e-3
    assert abs(exact - padded) <= TOL
