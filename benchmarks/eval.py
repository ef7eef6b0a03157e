"""`tuning-core eval` against lm-eval's own simple_evaluate on the same merged model: examples/second.

One JSON line per result. Tasks: the bundled log-likelihood (multiple choice) and generation (exact match)
tasks of examples/eval_tasks. Runners, each timed from model load to scores after one warm-up run, interleaved,
best (and median) of --repeats:
  tuning-core (adapter)  the `tuning-core eval` path: load_for_inference(LoRA adapter), LoRA merged in memory,
                         our HFLM wrapper
  tuning-core (merged)   the same on the merged model
  lm_eval.simple_evaluate  model="hf", pretrained=<merged model>, lm-eval loading the model itself
lm-eval's closing environment report (~10 s of pip/conda/nvidia-smi subprocesses, not evaluation) is skipped
for every runner alike. Usage: python benchmarks/eval.py [--repeats 5] [--batch_size 8] [--hidden 64]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from anchor import argv_flag, emit  # noqa: E402 (the folder goes on sys.path first)

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"loglikelihood": "twitter_complaints_choice", "generation": "twitter_complaints_label"}


def make_models(tmp: Path, hidden: int) -> tuple[Path, Path]:
    """A tiny Llama, a LoRA adapter on it (random, non-zero), and that adapter merged into a full model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuning_core.testing.tiny import build_model

    base = build_model(tmp / "base", arch="llama", hidden=hidden)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp / "adapter"
    peft_model.save_pretrained(adapter)
    merged = tmp / "merged"
    peft_model.merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(base).save_pretrained(merged)
    return adapter, merged


def ours(model_dir: Path, tasks, batch_size: int) -> float:
    from tuning_core.plugin_api import load_for_inference
    from tuning_core_eval.command import merge_lora_in_memory
    from tuning_core_eval.harness import evaluate

    t0 = time.perf_counter()
    loaded = load_for_inference(str(model_dir))
    merge_lora_in_memory(loaded)
    evaluate(loaded.model, loaded.tokenizer, tasks, batch_size=batch_size)
    return time.perf_counter() - t0


def direct(model_dir: Path, tasks, batch_size: int) -> float:
    import logging

    from lm_eval import simple_evaluate

    from tuning_core_eval.harness import _without_environment_report, quiet
    from tuning_core_eval.tasks import lm_eval_specs, task_manager

    quiet(logging.ERROR)
    t0 = time.perf_counter()
    with _without_environment_report():
        simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": "float32"},
            device="cpu",
            tasks=lm_eval_specs(tasks),
            batch_size=batch_size,
            task_manager=task_manager(tasks),
            log_samples=False,
            verbosity="ERROR",
            bootstrap_iters=1000,
        )
    return time.perf_counter() - t0


def main() -> None:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")
    from tuning_core_eval.tasks import go_offline, resolve_tasks

    go_offline()
    repeats, batch_size, hidden = argv_flag("--repeats", 5), argv_flag("--batch_size", 8), argv_flag("--hidden", 64)
    with tempfile.TemporaryDirectory() as tmp:
        adapter, merged = make_models(Path(tmp), hidden)
        for kind, task_name in KINDS.items():
            tasks = resolve_tasks([str(ROOT / "examples" / "eval_tasks" / f"{task_name}.yaml")])
            data = Path(tasks[0].config["dataset_kwargs"]["data_files"]["test"])
            n = sum(1 for line in data.read_text(encoding="utf-8").splitlines() if line.strip())
            runners = (
                ("tuning-core (adapter)", ours, adapter),
                ("tuning-core (merged)", ours, merged),
                ("lm_eval.simple_evaluate", direct, merged),
            )
            for _, fn, path in runners:  # warm-up: first imports and file caches count for nobody
                fn(path, tasks, batch_size)
            times = {name: [] for name, _, _ in runners}
            for _ in range(repeats):  # interleaved, so a busy moment on a shared machine hits every runner
                for name, fn, path in runners:
                    times[name].append(fn(path, tasks, batch_size))
            for name, seconds in times.items():
                best = min(seconds)
                emit(
                    bench="eval",
                    kind=kind,
                    task=task_name,
                    runner=name,
                    examples=n,
                    batch_size=batch_size,
                    hidden=hidden,
                    repeats=repeats,
                    seconds=round(best, 3),
                    median_seconds=round(median(seconds), 3),
                    examples_per_s=round(n / best, 2),
                )
            emit(
                bench="eval",
                kind=kind,
                task=task_name,
                metric="merged_speed_vs_lm_eval",
                ratio=round(min(times["lm_eval.simple_evaluate"]) / min(times["tuning-core (merged)"]), 3),
                adapter_ratio=round(min(times["lm_eval.simple_evaluate"]) / min(times["tuning-core (adapter)"]), 3),
            )


if __name__ == "__main__":
    main()
