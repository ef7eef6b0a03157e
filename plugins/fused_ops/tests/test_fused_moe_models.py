"""--fast_moe on tiny Mixtral, Granite MoE and Qwen3-MoE: the patched model computes what the unpatched one does
(loss with the router aux loss, every gradient, eval logits), checkpoints load with plain transformers, and
LoRA on the experts (peft's target_parameters) flows through the kernels."""

from __future__ import annotations

import pytest
import torch

from tuning_core.plugin_api import ConfigError, PatchReport
from tuning_core_fused_ops.moe_selection import MoeSelection
from tuning_core_fused_ops.patches.install import patched_forward, unpatch
from tuning_core_fused_ops.patches.moe import LABEL, patch_moe

ARCHS = ["mixtral", "granitemoe", "qwen3_moe"]
EXPERTS = {"mixtral": "MixtralExperts", "granitemoe": "GraniteMoeExperts", "qwen3_moe": "Qwen3MoeExperts"}


@pytest.fixture(scope="module")
def moe_models(tmp_path_factory, bpe_tokenizer_dir):
    from tuning_core.testing.tiny import build_model

    return {
        arch: build_model(
            tmp_path_factory.mktemp(f"moe_{arch}"),
            arch=arch,
            tokenizer_dir=bpe_tokenizer_dir,
            hidden=32,
            heads=2,
            intermediate=48,
        )
        for arch in ARCHS
    }


def _load(path):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():  # larger weights than the init's 0.02: gradients well above the tolerances
        for name, p in model.named_parameters():
            if "experts" in name or "gate" in name or "router" in name:
                p.normal_(0, 0.3)
    model.train()
    return model


def _batch(vocab=400):
    ids = torch.randint(3, vocab, (2, 11))
    labels = ids.clone()
    labels[0, :4] = -100
    return ids, labels


def _loss_and_grads(model, ids, labels):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=labels, output_router_logits=True)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def _kernel_nodes(model, arch_class):
    """Records the autograd node of each experts output: _ExpertMLPBackward when the kernel ran."""
    seen = []
    for m in model.modules():
        if type(m).__name__ == arch_class:
            m.register_forward_hook(lambda mod, args, out: seen.append(type(out.grad_fn).__name__))
    return seen


def _assert_same(ref, got):
    (ref_out, ref_grads), (out, grads) = ref, got
    torch.testing.assert_close(out.loss, ref_out.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.aux_loss, ref_out.aux_loss, rtol=1e-5, atol=1e-6)
    assert ref_grads.keys() == grads.keys() and any("experts" in n for n in ref_grads)
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("backend", ["torch", "auto"], ids=["torch", "triton"])
@pytest.mark.parametrize("arch", ARCHS)
def test_fast_moe_matches_the_unpatched_model(arch, backend, moe_models):
    model = _load(moe_models[arch])
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    assert ref[0].aux_loss is not None and ref[0].aux_loss > 0  # the router aux loss is part of the loss
    model.eval()
    with torch.no_grad():
        ref_logits = model(input_ids=ids).logits
    model.train()

    report = patch_moe(model, MoeSelection(backend=backend))
    assert report.replaced == {f"{EXPERTS[arch]}.forward -> scatter/gather grouped expert MLP": 2}
    nodes = _kernel_nodes(model, EXPERTS[arch])
    assert ("Triton kernels through the CPU interpreter" in report.notes[0]) == (backend == "auto")
    _assert_same(ref, _loss_and_grads(model, ids, labels))
    assert nodes == ["_ExpertMLPBackward"] * 2
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ref_logits, rtol=1e-5, atol=1e-5)

    assert unpatch(model) == 2
    assert not any(patched_forward(m) for m in model.modules())


def test_patch_refuses_a_dense_model(tiny_llama):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama)
    with pytest.raises(
        ConfigError,
        match="--fast_moe: the loaded model has model_type 'llama', which is not a mixture-of-experts model",
    ):
        patch_moe(model, MoeSelection())


def test_checkpoint_of_a_patched_model_loads_with_plain_transformers(moe_models, tmp_path):
    import transformers

    model = _load(moe_models["qwen3_moe"])
    reference_keys = set(model.state_dict())
    patch_moe(model, MoeSelection(backend="torch"))
    ids, labels = _batch()
    model(input_ids=ids, labels=labels).loss.backward()
    with torch.no_grad():  # one SGD step, so the saved experts differ from the initial ones
        for p in model.parameters():
            p -= 0.1 * p.grad
    model.save_pretrained(tmp_path)
    assert set(model.state_dict()) == reference_keys  # transformers' own names and layout: nothing to convert

    plain = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert not any(patched_forward(m) for m in plain.modules())
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "auto"], ids=["torch", "triton"])
def test_lora_on_experts_through_target_parameters(moe_models, tmp_path, backend):
    import peft
    import transformers

    base = _load(moe_models["mixtral"])
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        target_parameters=["experts.gate_up_proj", "experts.down_proj"],
        init_lora_weights=False,
    )  # random B: the adapters change the output
    model = peft.get_peft_model(base, config)
    ids, labels = _batch()
    ref = _loss_and_grads(model, ids, labels)
    assert any("experts" in n and "lora_" in n for n in ref[1])

    report = patch_moe(model, MoeSelection(backend=backend))
    assert report.replaced == {"MixtralExperts.forward -> scatter/gather grouped expert MLP": 2}
    nodes = _kernel_nodes(model, "MixtralExperts")
    got = _loss_and_grads(model, ids, labels)
    _assert_same(ref, got)
    assert nodes == ["_ExpertMLPBackward"] * 2  # the LoRA-adapted experts ran through the kernel

    model.save_pretrained(tmp_path / "adapter")
    fresh = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(moe_models["mixtral"]), tmp_path / "adapter"
    )
    with torch.no_grad():  # the base of the reloaded adapter is the saved tiny model, not _load's reinitialised one
        fresh.load_state_dict(model.state_dict())
    fresh.eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_patch_hook_combines_fast_kernels_and_fast_moe(moe_models):
    from tuning_core_fused_ops import plugin
    from tuning_core_fused_ops.arguments import FastMoeArguments, FusedOpsArguments

    class Config:
        peft_method = "none"

        def section(self, cls):
            return {
                FusedOpsArguments: FusedOpsArguments(fast_kernels=["True", "True", "False"], fused_ops_backend="torch"),
                FastMoeArguments: FastMoeArguments(fast_moe="True"),
            }[cls]

    model = _load(moe_models["mixtral"])
    report = plugin.tuning_core_patch_model(Config(), model)
    assert isinstance(report, PatchReport)
    assert report.replaced["MixtralExperts.forward -> scatter/gather grouped expert MLP"] == 2
    assert "MixtralRMSNorm.forward -> rms_norm" in report.replaced
    assert patched_forward(model.model.layers[0].mlp.experts) == LABEL
