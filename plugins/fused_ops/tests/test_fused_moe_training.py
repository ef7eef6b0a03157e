"""`run_training` with --fast_moe True on a tiny Mixtral: the banner names the patch, and the losses of a full
fine-tune (experts trained) equal those of a run without the plugin."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def plugins(monkeypatch):
    from tuning_core.plugins import reset_plugin_manager

    def use(names: str):
        monkeypatch.setenv("TUNING_CORE_PLUGINS", names)
        reset_plugin_manager()

    yield use
    reset_plugin_manager()


def _train(model_dir, data, out_dir, extra):
    from transformers import set_seed

    from tuning_core.pipeline import run_training

    set_seed(0)
    result = run_training(
        [
            "--model_name_or_path",
            str(model_dir),
            "--training_data_path",
            str(data),
            "--output_dir",
            str(out_dir),
            "--response_template",
            "\n### Label:",
            "--dataset_text_field",
            "output",
            "--peft_method",
            "none",
            "--per_device_train_batch_size",
            "2",
            "--max_steps",
            "3",
            "--logging_steps",
            "1",
            "--learning_rate",
            "1e-3",
            "--save_strategy",
            "no",
            "--seed",
            "0",
            *extra,
        ]
    )
    losses = [e["loss"] for e in result.trainer.state.log_history if "loss" in e]
    return result, losses


def test_run_training_with_fast_moe(tiny_mixtral, twitter_data, tmp_path, plugins):
    plugins("")
    _, ref = _train(tiny_mixtral, twitter_data, tmp_path / "ref", [])
    plugins("fused_ops")
    result, got = _train(tiny_mixtral, twitter_data, tmp_path / "moe", ["--fast_moe", "True"])
    banner = "\n".join(result.banner)
    assert "MixtralExperts.forward -> scatter/gather grouped expert MLP (x2)" in banner, banner
    assert len(ref) == 3
    assert got == pytest.approx(ref, rel=1e-4)
