"""--enable_reduce_loss_sum under torchrun: 2 gloo processes, compared with one process.

fms-hf-tuning's sum-reduced loss: each micro-batch's loss is the sum of its tokens' cross-entropy; the
Trainer divides by gradient accumulation and DDP averages the ranks' gradients. So 2 ranks x 2 examples
must train exactly like 1 process x 2 examples x 2 accumulation steps (same examples per step), and the
same 4 examples in one micro-batch sum to twice the loss (and, with plain SGD, twice the update).
"""

import math

import pytest

from .helpers import describe, load_weights, logged_losses, max_difference, run_launcher, torchrun, train_args

pytestmark = pytest.mark.slow
TOL = 1e-5
SUM_SGD = ["--peft_method", "None", "--enable_reduce_loss_sum", "true", "--optim", "sgd", "--learning_rate", "1e-2"]


def _single(tiny_llama, twitter_data, out, *extra, steps, per_device):
    from tuning_core.pipeline import run_training
    from tuning_core.plugins import reset_plugin_manager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNING_CORE_PLUGINS", "")
        reset_plugin_manager()
        result = run_training(
            train_args(
                tiny_llama, twitter_data, out, *SUM_SGD, "--use_cpu", "true", *extra, steps=steps, per_device=per_device
            )
        )
    reset_plugin_manager()
    return result


@pytest.fixture(scope="module")
def ddp_sum_run(tiny_llama, twitter_data, tmp_path_factory, launch_env):
    base = tmp_path_factory.mktemp("ddp_sum")
    out = base / "out"
    args = train_args(tiny_llama, twitter_data, out, *SUM_SGD, steps=2, per_device=2)
    done = run_launcher(torchrun("-m", "tuning_core.sft_trainer", *args), launch_env(base / "probe"))
    assert done.returncode == 0, describe(done)
    return out, done


def test_two_ranks_match_one_process_with_accumulation(ddp_sum_run, tiny_llama, twitter_data, tmp_path):
    out, done = ddp_sum_run
    assert "loss: summed over tokens (--enable_reduce_loss_sum)" in done.stdout
    single = tmp_path / "single"
    _single(tiny_llama, twitter_data, single, "--gradient_accumulation_steps", "2", steps=2, per_device=2)
    ours, theirs = logged_losses(out), logged_losses(single)
    assert [s for s, _ in ours] == [s for s, _ in theirs] == [1, 2]
    assert [v for _, v in ours] == pytest.approx([v for _, v in theirs], rel=1e-5)
    initial = load_weights(tiny_llama)
    trained = load_weights(out / "checkpoint-2")
    assert max((trained[k][: initial[k].shape[0]] - initial[k]).abs().max().item() for k in initial) > 100 * TOL
    assert max_difference(trained, load_weights(single / "checkpoint-2")) < TOL


def test_summed_not_averaged(ddp_sum_run, tiny_llama, twitter_data, tmp_path):
    """One micro-batch of the same 4 examples: its loss is the sum of both ranks' sums, twice their average."""
    out, _ = ddp_sum_run
    whole = tmp_path / "whole"
    _single(tiny_llama, twitter_data, whole, steps=1, per_device=4)
    ((_, ddp_first),) = logged_losses(out)[:1]
    ((_, whole_first),) = logged_losses(whole)
    assert whole_first == pytest.approx(2 * ddp_first, rel=1e-5)
    # A sum over every trained token (at least 2 per example), not a per-token mean of about ln(vocab) at the start.
    assert ddp_first > 3 * math.log(513)
