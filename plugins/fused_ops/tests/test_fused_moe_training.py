"""`run_training` with --fast_moe True on a tiny Mixtral: the banner names the patch, and the losses of a full
fine-tune (experts trained) equal those of a run without the plugin."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def _train(model_dir, data, out_dir, extra):
    from transformers import set_seed

    from tuning_core.pipeline import run_training
    from tuning_core.testing.training import train_argv

    set_seed(0)
    argv = train_argv(model_dir, data, out_dir, "--peft_method", "none", *extra, steps=3, batch=2, lr="1e-3")
    result = run_training(argv)
    losses = [e["loss"] for e in result.trainer.state.log_history if "loss" in e]
    return result, losses


def test_run_training_with_fast_moe(tiny_mixtral, twitter_data, tmp_path, plugins_enabled):
    plugins_enabled("")
    _, ref = _train(tiny_mixtral, twitter_data, tmp_path / "ref", [])
    plugins_enabled("fused_ops")
    result, got = _train(tiny_mixtral, twitter_data, tmp_path / "moe", ["--fast_moe", "True"])
    banner = "\n".join(result.banner)
    assert "MixtralExperts.forward -> scatter/gather grouped expert MLP (x2)" in banner, banner
    assert len(ref) == 3
    assert got == pytest.approx(ref, rel=1e-4)
