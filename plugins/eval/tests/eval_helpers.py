"""Helpers for the eval plugin's tests: the CLI as a user runs it, and scores computed by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

TASKS = Path(__file__).resolve().parents[3] / "examples" / "eval_tasks"
LABELS = ["complaint", "no complaint"]


def cli(*args, plugins="eval", timeout=600, env=None):
    """`python -m tuning_core ...` as a user runs it."""
    env = dict(os.environ, TUNING_CORE_PLUGINS=plugins, **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "tuning_core", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return proc


def train_argv(model, data, output_dir, *extra):
    return [
        "--model_name_or_path",
        str(model),
        "--training_data_path",
        str(data),
        "--output_dir",
        str(output_dir),
        "--response_template",
        "\n### Label:",
        "--dataset_text_field",
        "output",
        "--per_device_train_batch_size",
        "8",
        "--save_strategy",
        "no",
        "--logging_steps",
        "5",
        *extra,
    ]


def task_docs(n):
    with open(TASKS / "twitter_complaints_test.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f][:n]


def prompt(doc):
    return f"### Text: {doc['text']}\n\n### Label:"


def hand_loglikelihood(model, tokenizer, context, continuation):
    """log p(continuation | BOS + context), token by token: what lm-eval's loglikelihood should return."""
    import torch

    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ids = [tokenizer.bos_token_id] + whole
    n = len(whole) - len(ctx)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[-len(ids) :], dim=-1)
    return sum(logp[len(ids) - n - 1 + i, ids[len(ids) - n + i]].item() for i in range(n))


def hand_choice_accuracy(model, tokenizer, docs):
    correct = 0
    for doc in docs:
        scores = [hand_loglikelihood(model, tokenizer, prompt(doc), " " + c) for c in LABELS]
        correct += scores.index(max(scores)) == doc["label_id"]
    return correct / len(docs)


def hand_exact_match(model, tokenizer, docs):
    """Greedy generation of up to 8 tokens, cut at the task's stop strings, compared like the task YAML does."""
    from tuning_core.plugin_api import generate_greedy

    prompts = [prompt(d) for d in docs]
    outs = generate_greedy(model, tokenizer, prompts, max_new_tokens=8, batch_size=1)
    correct = 0
    for doc, p, out in zip(docs, prompts, outs, strict=False):
        pred = out[len(p) :].split("\n")[0].split("###")[0].strip()
        correct += pred.lower() == doc["label"].lower()
    return correct / len(docs)
