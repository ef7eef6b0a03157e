"""Patching tiny models: the patched model computes what the unpatched one does.

Each test loads a fresh tiny model (session fixtures from the root conftest), computes the
reference, patches, and compares: training loss and every trainable gradient (rtol 1e-5,
atol 1e-6 on loss; atol 1e-5 on gradients), eval logits (atol 1e-5). Kernels run through the
Triton interpreter (TRITON_INTERPRET=1 from this folder's conftest) unless a test asks for torch.
"""

from __future__ import annotations

import pytest
import torch

from tuning_core.plugin_api import ConfigError
from tuning_core_fused_ops.patcher import patch_model
from tuning_core_fused_ops.patches import rope as rope_patch
from tuning_core_fused_ops.patches.install import unpatch
from tuning_core_fused_ops.selection import Selection

ALL_KERNELS = Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True)


@pytest.fixture(autouse=True)
def _restore_module_functions():
    yield
    import importlib

    from tuning_core_fused_ops.patches.install import _FUNCTION_ORIGINALS

    for (module_name, name), original in list(_FUNCTION_ORIGINALS.items()):
        setattr(importlib.import_module(module_name), name, original)
        del _FUNCTION_ORIGINALS[(module_name, name)]


def _load(path, **config_overrides):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path, **config_overrides)
    model.train()
    return model


def _batch(vocab=500, batch=2, seq=9):
    ids = torch.randint(3, vocab, (batch, seq))
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt that is not trained on
    return ids, labels


def _loss_and_grads(model, ids, labels, **kwargs):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # same dropout masks in both runs
    out = model(input_ids=ids, labels=labels, **kwargs)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def _assert_same(ref, got):
    (ref_out, ref_grads), (out, grads) = ref, got
    torch.testing.assert_close(out.loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == grads.keys() and ref_grads
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("arch", ["llama", "mistral", "granite", "mixtral", "gpt_bigcode"])
def test_patched_model_matches_unpatched(arch, request):
    model = _load(request.getfixturevalue(f"tiny_{arch.replace('_', '')}"))
    ids, labels = _batch()
    extra = {"output_router_logits": True} if arch == "mixtral" else {}  # the router aux loss is added too
    ref = _loss_and_grads(model, ids, labels, **extra)
    model.eval()
    with torch.no_grad():
        ref_logits = model(input_ids=ids).logits
    model.train()

    report = patch_model(model, ALL_KERNELS)
    got = _loss_and_grads(model, ids, labels, **extra)
    _assert_same(ref, got)
    assert got[0].logits is None  # the fused path ran: no [tokens x vocab] logits were built
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ref_logits, rtol=1e-5, atol=1e-5)

    replaced = "\n".join(report.replaced)
    assert f"{type(model).__name__}.forward -> fused_linear_cross_entropy" in replaced
    if arch == "gpt_bigcode":
        assert len(report.replaced) == 1
        assert any("not applicable (GPTBigCode uses LayerNorm)" in n for n in report.notes)
    else:
        assert report.replaced[f"{type(model).__name__.replace('ForCausalLM', 'RMSNorm')}.forward -> rms_norm"] == 5
        assert f"modeling_{arch}.apply_rotary_pos_emb -> rope (process-wide)" in replaced
        assert ("MLP.forward -> SwiGLU kernel" in replaced) == (arch != "mixtral")
    assert "Triton kernels through the CPU interpreter" in report.notes[0]


def test_num_items_in_batch_and_shift_labels_follow_transformers(tiny_llama):
    model = _load(tiny_llama)
    ids, labels = _batch()
    n_items = torch.tensor(23)
    ref = model(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss
    shifted = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
    ref_shift = model(input_ids=ids, labels=labels, shift_labels=shifted.flip(-1)).loss
    patch_model(model, Selection(loss="fused_linear"))
    torch.testing.assert_close(model(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss, ref)
    torch.testing.assert_close(model(input_ids=ids, labels=labels, shift_labels=shifted.flip(-1)).loss, ref_shift)


def test_trained_position_batches_from_the_core(tiny_llama):
    """The core may pass a boolean logits_to_keep with aligned shift_labels: the fused loss uses the same rows."""
    from tuning_core.loss import restrict_to_trained_positions

    model = _load(tiny_llama)
    ids, labels = _batch()
    batch = restrict_to_trained_positions({"labels": labels})  # labels, logits_to_keep, shift_labels
    ref = _loss_and_grads(model, ids, batch.pop("labels"), **batch)
    patch_model(model, Selection(loss="fused_linear"))
    batch = restrict_to_trained_positions({"labels": labels})
    got = _loss_and_grads(model, ids, batch.pop("labels"), **batch)
    _assert_same(ref, got)
    assert got[0].logits is None


def test_triton_cross_entropy_on_full_logits(tiny_granite):
    model = _load(tiny_granite)  # Granite divides its logits by logits_scaling before the loss
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels, num_items_in_batch=torch.tensor(11))
    report = patch_model(model, Selection(loss="cross_entropy"))
    got = _loss_and_grads(model, ids, labels, num_items_in_batch=torch.tensor(11))
    _assert_same(ref, got)
    assert got[0].logits is not None and not report.replaces_loss
    assert "GraniteForCausalLM.loss_function -> triton_cross_entropy" in report.replaced


def test_lm_head_with_an_adapter_is_left_alone(tiny_llama):
    model = _peft(_load(tiny_llama), ["q_proj", "lm_head"], 0.0)
    report = patch_model(model, Selection(loss="fused_linear"))
    assert not report.replaced and not report.replaces_loss
    assert any("not a plain bias-free linear layer" in n for n in report.notes)


def test_generation_and_tuple_outputs_unchanged(tiny_llama):
    model = _load(tiny_llama)
    model.eval()
    ids, labels = _batch()
    ref_gen = model.generate(ids[:1], max_new_tokens=4, do_sample=False)
    patch_model(model, ALL_KERNELS)
    assert torch.equal(model.generate(ids[:1], max_new_tokens=4, do_sample=False), ref_gen)
    model.train()
    loss_tuple = model(input_ids=ids, labels=labels, return_dict=False)
    assert isinstance(loss_tuple, tuple) and loss_tuple[0].dim() == 0


def test_rope_kernel_runs_and_honours_packed_position_ids(tiny_llama, monkeypatch):
    """Padding-free: two sequences packed in one row with restarting position_ids give each sequence's own logits."""
    calls = []
    real = rope_patch.rope_triton
    monkeypatch.setattr(rope_patch, "rope_triton", lambda *a: calls.append(1) or real(*a))
    model = _load(tiny_llama)
    model.eval()
    patch_model(model, Selection(rope=True))
    a, b = torch.randint(3, 500, (1, 5)), torch.randint(3, 500, (1, 7))
    with torch.no_grad():
        packed = model(
            input_ids=torch.cat([a, b], 1),
            use_cache=False,
            position_ids=torch.cat([torch.arange(5), torch.arange(7)])[None],
        ).logits
        alone = [model(input_ids=x, use_cache=False).logits for x in (a, b)]
    assert calls, "the RoPE kernel was not called"
    torch.testing.assert_close(packed[:, :5], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed[:, 5:], alone[1], rtol=1e-5, atol=1e-5)


def test_torch_backend_and_its_report(tiny_llama):
    model = _load(tiny_llama)
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    report = patch_model(model, Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, backend="torch"))
    _assert_same(ref, _loss_and_grads(model, ids, labels))
    assert report.notes[0].startswith("backend: torch implementations")
    assert not any("rope" in k for k in report.replaced)
    assert any("fast RoPE: nothing replaced on the torch backend" in n for n in report.notes)
    report = patch_model(_load(tiny_llama), Selection(loss="cross_entropy", backend="torch"))
    assert not report.replaced
    assert any("Triton cross-entropy: nothing replaced on the torch backend" in n for n in report.notes)


def test_gradient_checkpointing(tiny_llama):
    model = _load(tiny_llama)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    patch_model(model, ALL_KERNELS)
    _assert_same(ref, _loss_and_grads(model, ids, labels))


def test_unpatch_restores_the_original(tiny_llama):
    import transformers.models.llama.modeling_llama as modeling

    original_rope = modeling.apply_rotary_pos_emb
    model = _load(tiny_llama)
    patch_model(model, ALL_KERNELS)
    assert modeling.apply_rotary_pos_emb is not original_rope
    assert unpatch(model) == 1 + 5 + 2 + 1  # causal LM, norms, MLPs, rope
    assert modeling.apply_rotary_pos_emb is original_rope
    assert all("forward" not in m.__dict__ for m in model.modules())
    ids, labels = _batch()
    assert model(input_ids=ids, labels=labels).logits is not None


def test_patching_twice_does_not_stack(tiny_llama):
    model = _load(tiny_llama)
    patch_model(model, ALL_KERNELS)
    again = patch_model(model, ALL_KERNELS)
    assert not any("RMSNorm" in k or "ForCausalLM" in k or "MLP" in k for k in again.replaced)


def test_unsupported_architecture_is_a_clear_error():
    import transformers

    cfg = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=64, n_positions=32)
    model = transformers.GPT2LMHeadModel(cfg)
    with pytest.raises(
        ConfigError,
        match=r"model type 'gpt2'.*supported model types: gemma2, gemma3_text, "
        r"gpt_bigcode, granite, granitemoe, llama, mistral, mixtral, phi3, qwen2, "
        r"qwen3, qwen3_moe",
    ):
        patch_model(model, ALL_KERNELS)


# --- fused LoRA ------------------------------------------------------------------------------------

ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _peft(model, targets, dropout):
    import peft

    cfg = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM", init_lora_weights=False
    )  # random B, so the adapters change the output
    return peft.get_peft_model(model, cfg)


@pytest.mark.parametrize(
    "targets,dropout,expect",
    [
        (
            ALL_PROJ,
            0.0,
            {
                "LlamaAttention LoRA q/k/v -> fused_lora_qkv": 2,
                "LlamaMLP.forward -> fused LoRA MLP (SwiGLU inside); SwiGLU kernel when not fused": 2,
            },
        ),
        (
            ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
            0.1,
            {"LlamaAttention LoRA q/k/v -> fused_lora_qkv": 2},
        ),
        (["o_proj"], 0.0, {"other LoRA linear layers -> fused_lora_linear": 2}),
    ],
)
def test_fused_lora_matches_peft(tiny_llama, targets, dropout, expect):
    model = _peft(_load(tiny_llama), targets, dropout)
    model.train()
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    report = patch_model(model, Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, lora=True))
    got = _loss_and_grads(model, ids, labels)
    _assert_same(ref, got)
    assert all(n.startswith("base_model.") and "lora_" in n for n in got[1])  # only adapters train
    for label, count in expect.items():
        assert report.replaced.get(label) == count, report.replaced


def test_fused_lora_falls_back_when_adapters_are_disabled(tiny_llama):
    model = _peft(_load(tiny_llama), ALL_PROJ, 0.0)
    model.eval()
    ids, _ = _batch()
    with torch.no_grad(), model.disable_adapter():
        base_logits = model(input_ids=ids).logits
    patch_model(model, Selection(lora=True))
    with torch.no_grad():
        with model.disable_adapter():
            torch.testing.assert_close(model(input_ids=ids).logits, base_logits)
        assert not torch.allclose(model(input_ids=ids).logits, base_logits)


def test_fused_lora_over_gptq_quant_linear():
    """A LoRA adapter over the GPTQ plugin's QuantLinear: fused forward/backward equal PEFT's."""
    qlinear = pytest.importorskip("tuning_core_peft_gptq.qlinear")
    import peft

    from tuning_core_fused_ops.patches.context import PatchContext
    from tuning_core_fused_ops.patches.lora_layers import install_lora_linear
    from tuning_core_fused_ops.rules import ARCHITECTURES

    in_f, out_f = 32, 24
    layer = qlinear.QuantLinear(in_f, out_f, group_size=16, bias=True)
    layer.qweight.copy_(torch.randint(-(2**31), 2**31 - 1, layer.qweight.shape, dtype=torch.int64).to(torch.int32))
    layer.qzeros.copy_(torch.randint(-(2**31), 2**31 - 1, layer.qzeros.shape, dtype=torch.int64).to(torch.int32))
    layer.scales.copy_(torch.rand(layer.scales.shape) * 0.01)
    layer.bias.data.normal_()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = layer

        def forward(self, x):
            return self.proj(x)

    net = peft.get_peft_model(
        Net(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["proj"], init_lora_weights=False)
    )
    x = torch.randn(3, 5, in_f, requires_grad=True)
    y_ref = net(x)
    y_ref.square().sum().backward()
    ref = [t.grad.clone() for t in (x, *[p for p in net.parameters() if p.requires_grad])]
    ctx = PatchContext(
        selection=Selection(lora=True, lora_base="auto_gptq"), arch=ARCHITECTURES["llama"], use_triton=None
    )
    assert install_lora_linear(net, ctx) == 1
    x.grad = None
    net.zero_grad(set_to_none=True)
    y = net(x)
    y.square().sum().backward()
    got = [t.grad for t in (x, *[p for p in net.parameters() if p.requires_grad])]
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, ref, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class Int8Linear(torch.nn.Linear):
    """A third party's quantized layer: not the GPTQ plugin's class, only plugin_api.QuantizedLinear's protocol."""

    def __init__(self, in_f, out_f):
        super().__init__(in_f, out_f, bias=False)
        self.weight.requires_grad_(False)
        self.scale = self.weight.abs().max() / 127
        self.q = torch.round(self.weight / self.scale).to(torch.int8)
        self.dequantized = 0

    def dequantize(self, dtype):
        self.dequantized += 1
        return (self.q.to(dtype) * self.scale.to(dtype)).t()

    def forward(self, x):
        return x @ self.dequantize(x.dtype)


def test_fused_lora_over_any_quantized_linear_protocol():
    import peft

    from tuning_core.plugin_api import QuantizedLinear
    from tuning_core_fused_ops.patches.context import PatchContext
    from tuning_core_fused_ops.patches.lora_layers import install_lora_linear
    from tuning_core_fused_ops.rules import ARCHITECTURES

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = Int8Linear(16, 12)

        def forward(self, x):
            return self.proj(x)

    assert isinstance(Int8Linear(8, 8), QuantizedLinear)
    net = peft.get_peft_model(
        Net(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["proj"], init_lora_weights=False)
    )
    x = torch.randn(3, 5, 16, requires_grad=True)
    y_ref = net(x)
    y_ref.square().sum().backward()
    ref = [t.grad.clone() for t in (x, *[p for p in net.parameters() if p.requires_grad])]
    ctx = PatchContext(
        selection=Selection(lora=True, lora_base="auto_gptq"), arch=ARCHITECTURES["llama"], use_triton=None
    )
    assert install_lora_linear(net, ctx) == 1
    x.grad = None
    net.zero_grad(set_to_none=True)
    base = net.base_model.model.proj.base_layer
    before = base.dequantized
    y = net(x)
    y.square().sum().backward()
    assert base.dequantized - before == 2  # its forward, then dequantize(dtype) for the input gradient
    got = [t.grad for t in (x, *[p for p in net.parameters() if p.requires_grad])]
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, ref, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fused_lora_with_a_quantized_kind_over_a_float_base_is_refused(tiny_llama):
    import peft
    from transformers import AutoModelForCausalLM

    from tuning_core.plugin_api import ConfigError

    model = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    with pytest.raises(
        ConfigError, match="--fused_lora auto_gptq True fuses LoRA over a quantized base, but no LoRA layer"
    ):
        patch_model(model, Selection(lora=True, lora_base="auto_gptq"))
