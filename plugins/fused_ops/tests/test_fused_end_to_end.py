"""`run_training` with fms-hf-tuning's flags: the plugin patches, the banner says so, and the losses
equal a run without the plugin (rel 1e-4, float32, Triton interpreter)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def plugins(plugins_enabled):
    return lambda names: plugins_enabled(*[n for n in names.split(",") if n])


def _train(
    model_dir,
    data,
    out_dir,
    extra,
    targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
):
    from transformers import set_seed

    from tuning_core.pipeline import run_training
    from tuning_core.testing.training import train_argv

    set_seed(0)  # the LoRA weights are drawn before the Trainer applies --seed: seed them alike in both runs

    argv = train_argv(
        model_dir,
        data,
        out_dir,
        "--peft_method",
        "lora",
        "--r",
        "4",
        "--lora_alpha",
        "16",
        "--lora_dropout",
        "0",
        "--target_modules",
        *targets,
        *extra,
        steps=3,
        batch=2,
        lr="1e-2",
    )
    result = run_training(argv)
    losses = [e["loss"] for e in result.trainer.state.log_history if "loss" in e]
    return result, losses


def test_run_training_with_fms_flags(tiny_llama, twitter_data, tmp_path, plugins):
    plugins("")
    _, ref = _train(tiny_llama, twitter_data, tmp_path / "ref", [])
    plugins("fused_ops")
    result, got = _train(
        tiny_llama,
        twitter_data,
        tmp_path / "fused",
        ["--fast_kernels", "True", "True", "True", "--fast_swiglu", "--fast_lora"],
    )
    banner = "\n".join(result.banner)
    for line in (
        "LlamaForCausalLM.forward -> fused_linear_cross_entropy",
        "LlamaRMSNorm.forward -> rms_norm",
        "apply_rotary_pos_emb -> rope",
        "LoRA q/k/v -> fused_lora_qkv",
        "fused LoRA MLP",
        "Triton kernels through the CPU interpreter",
    ):
        assert line in banner, banner
    assert len(ref) == 3
    assert got == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize(
    "arch,targets,banner_lines",
    [
        (
            "gemma2",
            ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            ("Gemma2RMSNorm.forward -> gemma_rms_norm", "fused LoRA MLP (GeGLU inside)"),
        ),
        (
            "phi3",
            ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
            ("Phi3RMSNorm.forward -> rms_norm", "fused LoRA MLP (SwiGLU inside)"),
        ),
    ],
)
def test_run_training_new_architectures(
    arch, targets, banner_lines, bpe_tokenizer_dir, twitter_data, tmp_path, plugins
):
    from tuning_core.testing.tiny import build_model

    model_dir = build_model(tmp_path / "model", arch=arch, tokenizer_dir=bpe_tokenizer_dir)
    attn = ["--attn_implementation", "eager"] if arch == "gemma2" else []  # Gemma 2 has no sdpa (soft-capping)
    plugins("")
    _, ref = _train(model_dir, twitter_data, tmp_path / "ref", attn, targets)
    plugins("fused_ops")
    result, got = _train(
        model_dir,
        twitter_data,
        tmp_path / "fused",
        [*attn, "--fast_kernels", "True", "True", "True", "--fast_swiglu", "--fast_lora"],
        targets,
    )
    banner = "\n".join(result.banner)
    for line in (
        f"{type(result.trainer.model.get_base_model()).__name__}.forward -> fused_linear_cross_entropy",
        "apply_rotary_pos_emb -> rope",
        *banner_lines,
    ):
        assert line in banner, banner
    assert len(ref) == 3
    assert got == pytest.approx(ref, rel=1e-4)


def test_run_training_rejects_fused_lora_without_lora(tiny_llama, twitter_data, tmp_path, plugins):
    from tuning_core.pipeline import run_training
    from tuning_core.plugin_api import ConfigError

    plugins("fused_ops")
    with pytest.raises(ConfigError, match="--fast_lora fuses LoRA adapters and needs --peft_method lora"):
        run_training(
            [
                "--model_name_or_path",
                str(tiny_llama),
                "--training_data_path",
                str(twitter_data),
                "--output_dir",
                str(tmp_path),
                "--response_template",
                "\n### Label:",
                "--dataset_text_field",
                "output",
                "--peft_method",
                "pt",
                "--fast_lora",
            ]
        )
