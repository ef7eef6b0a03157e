"""Each example in examples/trainercontroller_configs/ drives a real `run_training` on the tiny Llama.

The assertions are computed from what the run logged (training_logs.jsonl), so
they check the controller's decision, not a remembered number.
"""

import itertools
import json
from pathlib import Path

import pytest

from tuning_core.controller.callback import TrainerControllerCallback
from tuning_core.controller.patience import Patience
from tuning_core.testing.training import logged

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trainercontroller_configs"
pytestmark = pytest.mark.slow


@pytest.fixture
def train(tiny_llama, twitter_data, tmp_path, builtin_plugins_only):
    from tuning_core.pipeline import run_training

    def run(example: str, max_steps: int, *extra: str):
        out = tmp_path / "out"
        result = run_training(
            [
                "--model_name_or_path",
                str(tiny_llama),
                "--training_data_path",
                str(twitter_data),
                "--output_dir",
                str(out),
                "--response_template",
                "\n### Label:",
                "--dataset_text_field",
                "output",
                "--per_device_train_batch_size",
                "4",
                "--logging_steps",
                "1",
                "--learning_rate",
                "1e-2",
                "--lr_scheduler_type",
                "constant",
                "--save_strategy",
                "no",
                "--max_steps",
                str(max_steps),
                "--trainer_controller_config_file",
                str(EXAMPLES / example),
                *extra,
            ]
        )
        (callback,) = [
            cb for cb in result.trainer.callback_handler.callbacks if isinstance(cb, TrainerControllerCallback)
        ]
        return result.trainer.state.global_step, callback, out

    return run


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))


def test_stop_on_training_loss_below_threshold(train):
    step, callback, out = train("stop-on-training-loss-below-threshold.yaml", 16)
    losses = logged(out, "training_loss")
    expected = next((s for s, loss in losses if loss < 1.0), None)
    assert expected is not None and expected < 16, f"precondition: loss must fall below 1.0: {losses}"
    assert step == expected == losses[-1][0]
    assert [(f.controller, f.step) for f in callback.firings] == [("stop_on_low_training_loss", expected)]


def test_early_stop_on_rising_eval_loss(train, tmp_path, twitter_data):
    # Validation labels the model never sees in training: their loss rises as it learns the real labels.
    rows = [json.loads(line) for line in Path(twitter_data).read_text().splitlines()[:8]]
    val = tmp_path / "val.jsonl"
    val.write_text(
        "".join(
            json.dumps({"output": r["output"].split("### Label:")[0] + "### Label: purple elephant"}) + "\n"
            for r in rows
        )
    )
    step, callback, out = train(
        "early-stop-on-rising-eval-loss.yaml",
        20,
        "--validation_data_path",
        str(val),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
    )
    evals = logged(out, "validation_loss")
    patience, expected = Patience(1), None
    for (_, previous), (s, current) in itertools.pairwise(evals):
        if patience.should_act(current > previous):
            expected = s
            break
    assert expected is not None and expected < 20, f"precondition: eval loss must rise: {evals}"
    assert step == expected == evals[-1][0]
    assert [f.controller for f in callback.firings] == ["early_stop_on_rising_eval_loss"]


def test_stop_at_step(train):
    step, callback, out = train("stop-at-step.yaml", 12)
    assert step == 5
    assert logged(out, "training_loss")[-1][0] == 5
    assert [(f.event, f.step) for f in callback.firings] == [("on_step_end", 5)]


def test_save_when_loss_crosses_threshold(train, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="tuning_core.controller")
    step, _callback, out = train("save-when-loss-crosses-threshold.yaml", 8)
    losses = logged(out, "training_loss")
    crossings = [s for (_, a), (s, b) in itertools.pairwise(losses) if a >= 3.0 > b]
    assert crossings, f"precondition: the loss must cross 3.0: {losses}"
    assert step == 8  # saving does not stop training
    assert checkpoint_steps(out) == crossings  # --save_strategy no: only the controller saved
    for s in crossings:
        assert (out / f"checkpoint-{s}" / "checkpoint_complete.json").is_file()
    announced = [r.getMessage() for r in caplog.records if "saving a checkpoint" in r.getMessage()]
    assert [m.split(" at step ")[1] for m in announced] == [f"{s}: saving a checkpoint" for s in crossings]
