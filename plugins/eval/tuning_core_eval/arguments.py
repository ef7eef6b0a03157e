"""`train` flags: evaluate the tuned model on lm-eval tasks when training ends."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalTaskArguments:
    eval_tasks: list[str] | None = field(
        default=None,
        metadata={
            "help": "lm-eval tasks to score the tuned model on when training ends (task YAMLs, folders, "
            "or names of examples/eval_tasks; comma- or space-separated). Scores go to "
            "training_logs.jsonl and the enabled trackers."
        },
    )
    eval_tasks_limit: int | None = field(
        default=None,
        metadata={"help": "With --eval_tasks: only the first N examples of each task."},
    )
    eval_tasks_num_fewshot: int | None = field(
        default=None,
        metadata={"help": "With --eval_tasks: few-shot examples per prompt."},
    )
    eval_tasks_batch_size: int = field(
        default=8,
        metadata={"help": "With --eval_tasks: requests run together."},
    )
