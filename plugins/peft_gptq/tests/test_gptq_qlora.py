"""QLoRA with bitsandbytes 4-bit on CPU: training, no float32 upcast, reloading the adapter with plain peft."""

import pytest
import torch
from peft_gptq_helpers import PROMPT, losses, train_args

from tuning_core.pipeline import run_training

pytest.importorskip("bitsandbytes")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qlora_run(tiny_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("qlora")
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--bnb_qlora",
            "nf4",
            "--target_modules",
            "all-linear",
            "--save_model_dir",
            out / "final",
        )
    )
    return out, result


def test_qlora_trains_on_4bit_layers(qlora_run):
    import bitsandbytes as bnb

    out, result = qlora_run
    first, *_, last = losses(out)
    assert last < first - 0.3
    model = result.trainer.model
    bases = [m.get_base_layer() for _, m in model.named_modules() if hasattr(m, "lora_A")]
    assert len(bases) == 14 and all(isinstance(b, bnb.nn.Linear4bit) for b in bases)
    assert all(b.weight.quant_state.quant_type == "nf4" for b in bases)
    assert all(b.weight.quant_state.nested for b in bases)  # double quantization
    assert any("bitsandbytes 4-bit nf4" in line for line in result.banner)


def test_adapter_loads_with_plain_peft_on_a_4bit_base(qlora_run, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    out, result = qlora_run
    tok = AutoTokenizer.from_pretrained(out / "final")
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, quantization_config=quant, dtype=torch.float32)
    base.resize_token_embeddings(len(tok))
    model = PeftModel.from_pretrained(base, out / "final").eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    trained = result.trainer.model.eval()
    # TRL's SFTTrainer casts the LoRA weights of bitsandbytes models to bfloat16 (even on CPU), so the trained
    # model runs its LoRA path in bfloat16 while the reloaded one runs the same values in float32.
    lora_dtypes = {p.dtype for n, p in trained.named_parameters() if "lora_" in n}
    tol = 2e-3 if torch.bfloat16 in lora_dtypes else 1e-4
    with torch.no_grad():
        got, want = model(ids).logits, trained(ids).logits
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
        with model.disable_adapter():
            assert (model(ids).logits - want).abs().max() > 10 * tol  # the adapter matters


def _loaded(tiny_llama, tmp_path, dtype):
    from tuning_core.config import load_train_config
    from tuning_core.plugins import get_plugin_manager
    from tuning_core_peft_gptq import plugin

    config = load_train_config(
        [
            "--model_name_or_path",
            str(tiny_llama),
            "--output_dir",
            str(tmp_path),
            "--bnb_qlora",
            "fp4",
            "--peft_method",
            "lora",
            "--torch_dtype",
            dtype,
            "--target_modules",
            "all-linear",
        ],
        get_plugin_manager(),
    )
    return config, plugin.tuning_core_load_model(config=config, purpose="train")


def test_no_float32_upcast_of_the_base(tiny_llama, tmp_path):
    """peft's prepare_model_for_kbit_training casts embeddings, norms and lm_head to float32; ours keeps them."""
    from peft import prepare_model_for_kbit_training

    from tuning_core_peft_gptq import plugin

    config, loaded = _loaded(tiny_llama, tmp_path, "bfloat16")
    model = plugin.tuning_core_augment_model(config=config, model=loaded.model, tokenizer=loaded.tokenizer)
    base_floats = {p.dtype for n, p in model.named_parameters() if "lora_" not in n and p.is_floating_point()}
    assert base_floats == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}  # LoRA weights
    ids = loaded.tokenizer(PROMPT, return_tensors="pt").input_ids
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    _, reference = _loaded(tiny_llama, tmp_path, "bfloat16")
    upcast = prepare_model_for_kbit_training(reference.model, use_gradient_checkpointing=False)
    assert {p.dtype for p in upcast.parameters() if p.is_floating_point()} == {torch.float32}
