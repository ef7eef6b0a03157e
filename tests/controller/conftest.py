"""Helpers for controller tests: a bare transformers.Trainer on the tiny Llama with a controller attached."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest


def _encode(tokenizer, texts, length):
    pad = tokenizer.eos_token_id
    rows = []
    for text in texts:
        ids = tokenizer(text)["input_ids"][:length]
        rows.append(
            {
                "input_ids": ids + [pad] * (length - len(ids)),
                "attention_mask": [1] * len(ids) + [0] * (length - len(ids)),
                "labels": ids + [-100] * (length - len(ids)),
            }
        )
    return rows


class _ListDataset:
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        import torch

        return {k: torch.tensor(v) for k, v in self.rows[i].items()}


@pytest.fixture(scope="session")
def controller_data(tiny_llama, twitter_data):
    """16 training rows from the bundled tweets and 4 eval rows of random tokens.

    Training pulls probability mass toward tweet tokens, so the loss on random
    tokens rises from the first steps: a dependable "eval loss goes up" signal.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    texts = [json.loads(line)["output"] for line in Path(twitter_data).read_text().splitlines()[:16]]
    rng = random.Random(0)
    noise = [[rng.randrange(3, len(tok)) for _ in range(24)] for _ in range(4)]
    eval_rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids} for ids in noise]
    return _ListDataset(_encode(tok, texts, 48)), _ListDataset(eval_rows)


@pytest.fixture
def run_controlled(tiny_llama, controller_data, tmp_path):
    """run_controlled(yaml_text, max_steps=..., **training_args) -> (trainer, callback)."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from tuning_core.controller import builtin_components, load_plan
    from tuning_core.controller.callback import TrainerControllerCallback

    train_ds, eval_ds = controller_data

    def run(yaml_text: str, max_steps: int = 8, components=None, **overrides):
        cfg = tmp_path / "controller.yaml"
        cfg.write_text(yaml_text)
        plan = load_plan(str(cfg), components or builtin_components())
        callback = TrainerControllerCallback(plan)
        args = dict(
            output_dir=str(tmp_path / "out"),
            max_steps=max_steps,
            per_device_train_batch_size=4,
            learning_rate=1e-2,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
            lr_scheduler_type="constant",
            eval_strategy="no",
        )
        args.update(overrides)
        model = AutoModelForCausalLM.from_pretrained(tiny_llama)
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**args),
            train_dataset=train_ds,
            eval_dataset=eval_ds if args["eval_strategy"] != "no" else None,
            callbacks=[callback],
        )
        trainer.train()
        return trainer, callback

    return run
