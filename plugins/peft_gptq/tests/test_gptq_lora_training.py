"""GPTQ-LoRA end to end: train through run_training, reload the adapter with plain peft, run inference."""

import json

import pytest
import torch
from peft_gptq_helpers import PROMPT, losses, train_args

from tuning_core.pipeline import run_training
from tuning_core_peft_gptq.gptq_loader import load_gptq_model
from tuning_core_peft_gptq.qlinear import QuantLinear

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gptq_run(gptq_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq_lora")
    result = run_training(
        train_args(
            gptq_llama,
            twitter_data,
            out,
            "--auto_gptq",
            "triton_v2",
            "--target_modules",
            "all-linear",
            "--r",
            "8",
            "--lora_alpha",
            "16",
            "--save_model_dir",
            out / "final",
        )
    )
    return out, result


def test_trains_lora_on_the_quantized_layers(gptq_run):
    out, result = gptq_run
    first, *_, last = losses(out)
    assert last < first - 0.3
    model = result.trainer.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = [m.get_base_layer() for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert len(wrapped) == 14 and all(isinstance(b, QuantLinear) for b in wrapped)
    assert any("peft_gptq" in line and "GPTQ 4-bit" in line for line in result.banner)


def test_all_linear_means_the_quantized_layers_without_lm_head(gptq_run):
    out, _ = gptq_run
    cfg = json.loads((out / "final" / "adapter_config.json").read_text())
    assert sorted(cfg["target_modules"]) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]


def _ids(tok):
    return tok(PROMPT, return_tensors="pt").input_ids


def test_adapter_loads_with_plain_peft_on_our_loader(gptq_run, gptq_llama):
    from peft import PeftModel
    from transformers import AutoTokenizer

    out, result = gptq_run
    tok = AutoTokenizer.from_pretrained(out / "final")
    base, _ = load_gptq_model(str(gptq_llama))
    base.resize_token_embeddings(len(tok))  # training added a pad token
    model = PeftModel.from_pretrained(base, out / "final").eval()
    trained = result.trainer.model.eval()
    with torch.no_grad():
        got, want = model(_ids(tok)).logits, trained(_ids(tok)).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with model.disable_adapter(), torch.no_grad():
        assert (model(_ids(tok)).logits - want).abs().max() > 1e-3  # the adapter matters


def test_tuning_core_infer_loads_through_the_hook(gptq_run):
    from tuning_core.infer import generate, load_for_inference

    out, result = gptq_run
    loaded = load_for_inference(str(out / "final"))
    assert "loaded by peft_gptq" in loaded.description and "LORA" in loaded.description
    trained = result.trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(_ids(loaded.tokenizer)).logits, trained(_ids(loaded.tokenizer)).logits, rtol=1e-4, atol=1e-4
        )
    texts = generate(loaded.model, loaded.tokenizer, [PROMPT, "### Text: thanks!"], max_new_tokens=3)
    assert len(texts) == 2 and texts[0].startswith("### Text: my flight was late")


def test_gpt_bigcode_fms_example_targets(gptq_checkpoint, twitter_data, tmp_path):
    """fms-hf-tuning's README example: --target_modules c_attn c_proj on a GPTBigCode GPTQ checkpoint."""
    ckpt = gptq_checkpoint("gpt_bigcode", 32, False)
    result = run_training(
        train_args(
            ckpt, twitter_data, tmp_path, "--auto_gptq", "triton_v2", "--target_modules", "c_attn", "c_proj", steps=4
        )
    )
    first, *_, last = losses(tmp_path)
    assert last < first
    wrapped = [n for n, m in result.trainer.model.named_modules() if hasattr(m, "lora_A")]
    assert len(wrapped) == 6  # attn.c_attn, attn.c_proj and mlp.c_proj in each of the 2 layers


def test_load_hook_purposes(gptq_llama, tiny_llama):
    """For inference a GPTQ base is ours whatever the flags; a float base is left to the core."""
    from tuning_core.config import make_config
    from tuning_core.plugins import get_plugin_manager
    from tuning_core_peft_gptq import plugin

    pm = get_plugin_manager()
    loaded = plugin.tuning_core_load_model(config=make_config(pm, model_name_or_path=str(gptq_llama)), purpose="infer")
    assert sum(isinstance(m, QuantLinear) for m in loaded.model.modules()) == 14
    assert loaded.tokenizer is not None and "GPTQ 4-bit, group 32, desc_act=True" in loaded.description
    assert (
        plugin.tuning_core_load_model(config=make_config(pm, model_name_or_path=str(tiny_llama)), purpose="infer")
        is None
    )
    forced = make_config(pm, model_name_or_path=str(gptq_llama), auto_gptq=["torch"])
    loaded = plugin.tuning_core_load_model(config=forced, purpose="train")
    assert {m.backend for m in loaded.model.modules() if isinstance(m, QuantLinear)} == {"torch"}


def test_gradient_checkpointing_gives_the_same_lora_gradients(gptq_llama, tmp_path):
    from tuning_core.config import load_train_config
    from tuning_core.plugins import get_plugin_manager
    from tuning_core_peft_gptq import plugin

    grads = []
    for checkpointing in ("false", "true"):
        config = load_train_config(
            [
                "--model_name_or_path",
                str(gptq_llama),
                "--output_dir",
                str(tmp_path),
                "--auto_gptq",
                "triton_v2",
                "--peft_method",
                "lora",
                "--lora_dropout",
                "0",
                "--gradient_checkpointing",
                checkpointing,
            ],
            get_plugin_manager(),
        )
        loaded = plugin.tuning_core_load_model(config=config, purpose="train")
        torch.manual_seed(0)  # the same LoRA initialisation both times
        model = plugin.tuning_core_augment_model(config=config, model=loaded.model, tokenizer=loaded.tokenizer)
        if checkpointing == "true":
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        for n, p in model.named_parameters():  # LoRA B starts at zero: give it values so A gets gradients
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(0))
        model.train()
        ids = loaded.tokenizer(PROMPT, return_tensors="pt").input_ids
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 8
    for name, g in grads[0].items():
        assert g is not None and g.abs().sum() > 0
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6)
