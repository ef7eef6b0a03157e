"""Before and after a short LoRA run: lm-eval's scores, checked against hand computation, in every output."""

import json

import pytest
from eval_helpers import (
    hand_choice_accuracy,
    hand_exact_match,
    prompt,
    task_docs,
    train_argv,
)

pytestmark = pytest.mark.slow

LABEL = "eval_tasks/twitter_complaints_label/exact_match[strip]"
CHOICE = "eval_tasks/twitter_complaints_choice/acc"


def _logged(output_dir):
    rows = [json.loads(line) for line in (output_dir / "training_logs.jsonl").read_text().splitlines()]
    return {r["name"]: r["data"] for r in rows if r["name"].startswith("eval_tasks/")}


def test_train_eval_tasks_scores_the_saved_model(lora_run):
    """tuning_core_trainer_callbacks: scores in training_logs.jsonl at the last step, equal to hand-computed
    scores of the saved adapter, and in the trainer's own log call (what every tracker's on_log receives)."""
    from tuning_core.plugin_api import load_for_inference

    out, result = lora_run
    logged = _logged(out)
    steps = result.trainer.state.max_steps
    assert {LABEL, CHOICE} <= set(logged) and all(d["step"] == steps for d in logged.values())
    last = [h for h in result.trainer.state.log_history if LABEL in h]
    assert len(last) == 1 and last[0]["step"] == steps and last[0][CHOICE] == logged[CHOICE]["value"]
    # A tracker plugin's callback (registered like Aim's and MLflow's) gets them once, in its on_log.
    seen = [logs for logs in result.recorded_logs if LABEL in logs]
    assert len(seen) == 1 and seen[0][CHOICE] == logged[CHOICE]["value"] and "loss" in seen[0]
    loaded = load_for_inference(str(out / "final"))
    docs = task_docs(10)
    assert logged[CHOICE]["value"] == pytest.approx(hand_choice_accuracy(loaded.model, loaded.tokenizer, docs))
    assert logged[LABEL]["value"] == pytest.approx(hand_exact_match(loaded.model, loaded.tokenizer, docs))


def test_compare_base_tuning_helps(lora_run, tasks_dir, tmp_path, capsys):
    from tuning_core.cli import main

    out, _ = lora_run
    results = tmp_path / "cmp.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(out / "final"),
                "--tasks",
                f"{tasks_dir},",
                "--limit",
                "10",
                "--compare_base",
                "--output_path",
                str(results),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    data = json.loads(results.read_text())
    rows = {(r["task"], r["metric"]): r for r in data["comparison"]}
    label = rows[("twitter_complaints_label", "exact_match[strip]")]
    # Built so that tuning must help: a random base never writes a label; the tuned model does.
    assert label["base"] == 0.0 and label["tuned"] > label["base"]
    for r in rows.values():
        assert r["delta"] == pytest.approx(r["tuned"] - r["base"])
        line = next(ln for ln in printed.splitlines() if ln.startswith(r["task"]) and f" {r['metric']} " in ln)
        assert line.split()[2:5] == [f"{r['base']:.4f}", f"{r['tuned']:.4f}", f"{r['delta']:.4f}"]
    logged = _logged(out)  # the same 10 examples, scored during training
    assert label["tuned"] == pytest.approx(logged[LABEL]["value"])
    assert rows[("twitter_complaints_choice", "acc")]["tuned"] == pytest.approx(logged[CHOICE]["value"])
    png = results.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(png).shape
    assert width >= 600 and height >= 400
    assert data["base"]["scores"] and data["lm_eval"]["results"]["twitter_complaints_label"]


def test_data_scoring_writes_scores_and_predictions(lora_run, tmp_path, capsys):
    from tuning_core.cli import main
    from tuning_core.plugin_api import load_for_inference

    out, _ = lora_run
    docs = task_docs(5)
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"question": prompt(d), "answer": d["label"]}) + "\n" for d in docs))
    results = tmp_path / "scores.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(out / "final"),
                "--data",
                str(data),
                "--input_field",
                "question",
                "--output_field",
                "answer",
                "--max_new_tokens",
                "8",
                "--output_path",
                str(results),
            ]
        )
        == 0
    )
    scores = json.loads(results.read_text())["data"]
    preds = [json.loads(line) for line in (tmp_path / "scores_predictions.jsonl").read_text().splitlines()]
    assert [p["target"] for p in preds] == [d["label"] for d in docs]
    assert scores["exact_match"] == pytest.approx(sum(p["correct"] for p in preds) / 5)
    loaded = load_for_inference(str(out / "final"))
    assert scores["exact_match"] == pytest.approx(hand_exact_match(loaded.model, loaded.tokenizer, docs))
    assert "exact_match" in capsys.readouterr().out


def test_training_stopped_early_is_still_scored(tiny_llama, tmp_path):
    """A run that stops before max_steps (e.g. a trainer-controller rule) is scored when training ends."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from tuning_core.plugin_api import load_for_inference
    from tuning_core_eval.callback import EvalTasksCallback

    config = SimpleNamespace(
        eval_tasks=["twitter_complaints_choice"],
        eval_tasks_limit=3,
        eval_tasks_num_fewshot=None,
        eval_tasks_batch_size=4,
    )
    callback = EvalTasksCallback(config, str(tmp_path), is_main_process=True)
    state = TrainerState(global_step=3, max_steps=10, epoch=0.5)
    loaded = load_for_inference(str(tiny_llama))
    callback.on_step_end(None, state, TrainerControl(), model=loaded.model, processing_class=loaded.tokenizer)
    assert not (tmp_path / "training_logs.jsonl").exists()  # not the last step: nothing yet
    callback.on_train_end(None, state, TrainerControl(), model=loaded.model, processing_class=loaded.tokenizer)
    rows = [json.loads(line) for line in (tmp_path / "training_logs.jsonl").read_text().splitlines()]
    assert {r["name"] for r in rows} == {CHOICE, CHOICE + "_norm"} and {r["data"]["step"] for r in rows} == {3}
    acc = next(r["data"]["value"] for r in rows if r["name"] == CHOICE)
    assert acc == pytest.approx(hand_choice_accuracy(loaded.model, loaded.tokenizer, task_docs(3)))


def test_scores_reach_the_mlflow_tracker(tiny_llama, twitter_data, tmp_path, plugins_enabled, monkeypatch):
    """With --trackers mlflow the scores are in the MLflow run, at the last step, as logged to the file."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    plugins_enabled("eval", "trackers")
    from mlflow.tracking import MlflowClient

    from tuning_core.pipeline import run_training

    run_training(
        train_argv(
            tiny_llama,
            twitter_data,
            tmp_path,
            "--peft_method",
            "lora",
            "--max_steps",
            "2",
            "--trackers",
            "file_logger",
            "mlflow",
            "--eval_tasks",
            "twitter_complaints_choice",
            "--eval_tasks_limit",
            "3",
        )
    )
    info = json.loads((tmp_path / "mlflow_tracker.json").read_text())
    history = MlflowClient(tracking_uri=info["tracking_uri"]).get_metric_history(info["run_id"], CHOICE)
    logged = _logged(tmp_path)[CHOICE]
    assert [(m.step, m.value) for m in history] == [(2, pytest.approx(logged["value"]))]
