"""`train --eval_tasks`: score the tuned model with lm-eval when training ends.

The evaluation runs at the end of the last optimizer step, on the weights the run then
saves, and forces a log call: the scores ride in the trainer's own ``logs``, so every
tracker records them through its usual ``on_log`` (this callback is first in the list).
They also go to training_logs.jsonl as lines named ``eval_tasks/<task>/<metric>``.
A run that stops early is scored when training ends, into training_logs.jsonl only.
"""

from __future__ import annotations

import datetime
import json
import os

from transformers import TrainerCallback

from tuning_core.plugin_api import ConfigError

LOG_FILE = "training_logs.jsonl"
PREFIX = "eval_tasks"


def validate(config) -> None:
    if not config.eval_tasks:
        for flag in ("eval_tasks_limit", "eval_tasks_num_fewshot"):
            if getattr(config, flag) is not None:
                raise ConfigError(f"--{flag} needs --eval_tasks")
        return
    from tuning_core_eval.command import example_task_dirs
    from tuning_core_eval.tasks import go_offline, parse_task_list, resolve_tasks

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "--eval_tasks runs on one process; run `tuning-core eval` on the saved model after a multi-process run"
        )
    go_offline()
    for flag in ("eval_tasks_limit", "eval_tasks_batch_size"):
        value = getattr(config, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} {value}: expected a positive integer")
    resolve_tasks(parse_task_list(config.eval_tasks, "--eval_tasks"), example_task_dirs(), flag="--eval_tasks")


class EvalTasksCallback(TrainerCallback):
    def __init__(self, config, output_dir: str, is_main_process: bool):
        from tuning_core_eval.command import example_task_dirs
        from tuning_core_eval.tasks import parse_task_list, resolve_tasks

        self.tasks = resolve_tasks(
            parse_task_list(config.eval_tasks, "--eval_tasks"), example_task_dirs(), flag="--eval_tasks"
        )
        self.limit, self.num_fewshot = config.eval_tasks_limit, config.eval_tasks_num_fewshot
        self.batch_size = config.eval_tasks_batch_size
        self.path = os.path.join(output_dir, LOG_FILE)
        self.is_main_process = is_main_process
        self.metrics: dict[str, float] | None = None
        self.scores = []
        self.logged = False

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step < state.max_steps or self.metrics is not None:
            return
        self._evaluate(state, model, processing_class)
        control.should_log = True  # the trainer's log call that follows carries the scores to the trackers

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        # Training stopped before max_steps (a trainer-controller rule, say): score what it ended with,
        # into training_logs.jsonl only -- the trainer logs nothing more.
        if self.metrics is None:
            self._evaluate(state, model, processing_class)

    def _evaluate(self, state, model, tokenizer) -> None:
        self.metrics = {}
        if not self.is_main_process:
            return
        from tuning_core_eval.harness import evaluate

        self.scores, _ = evaluate(model, tokenizer, self.tasks, self.num_fewshot, self.limit, self.batch_size)
        self.metrics = {f"{PREFIX}/{s.task}/{s.metric}": s.value for s in self.scores}
        self._write(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.metrics and logs is not None and not self.logged:
            logs.update(self.metrics)
            self.logged = True
            # Trainer.log appended this record to the history before the callbacks ran: keep the two the same.
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(self.metrics)

    def _write(self, state) -> None:
        now = datetime.datetime.now().isoformat()
        lines = [
            json.dumps(
                {
                    "name": name,
                    "data": {
                        "epoch": round(state.epoch or 0.0, 4),
                        "step": state.global_step,
                        "timestamp": now,
                        "value": value,
                    },
                }
            )
            for name, value in self.metrics.items()
        ]
        if lines:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
