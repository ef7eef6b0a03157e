"""Run lm-eval (as a library) on a model that is already in memory: one load, batched requests."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass

from tuning_core_eval.tasks import LocalTask, lm_eval_specs, task_manager


@dataclass
class Score:
    task: str
    metric: str  # "exact_match", or "exact_match[strip]" when lm-eval applied a named filter
    value: float
    stderr: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def make_lm(model, tokenizer, batch_size: int = 8):
    """lm-eval's HFLM around our model. Prompt-learning adapters prepend virtual tokens to the logits;
    lm-eval indexes logits by input position, so those are cut off."""
    from lm_eval.models.huggingface import HFLM

    prompt_learning = getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False)

    class TunedLM(HFLM):
        def _model_call(self, inps, attn_mask=None, labels=None):
            logits = super()._model_call(inps, attn_mask, labels)
            if logits.shape[1] > inps.shape[1]:
                logits = logits[:, -inps.shape[1] :]
            return logits

        def generate_until(self, requests, disable_tqdm: bool = False):
            # peft ignores position ids under prompt learning, so left padding would shift the real tokens'
            # positions (see tuning_core.infer._batches): generate one prompt at a time there.
            if not prompt_learning:
                return super().generate_until(requests, disable_tqdm)
            saved, self.batch_size_per_gpu = self.batch_size_per_gpu, 1
            try:
                return super().generate_until(requests, disable_tqdm)
            finally:
                self.batch_size_per_gpu = saved

    if tokenizer.pad_token is None:  # in memory only, as `tuning-core infer` does
        tokenizer.pad_token = tokenizer.eos_token
    quiet(logging.ERROR)
    return TunedLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_batch_size=batch_size)


def quiet(level: int) -> None:
    for name in ("lm-eval", "lm_eval", "lm_eval.models.huggingface", "lm_eval.evaluator"):
        logging.getLogger(name).setLevel(level)


def evaluate(
    model,
    tokenizer,
    tasks: list[LocalTask | str],
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
) -> tuple[list[Score], dict]:
    """Scores from lm-eval's own metric code, and lm-eval's raw results (for the JSON file)."""
    lm = make_lm(model, tokenizer, batch_size)
    return evaluate_lm(lm, tasks, num_fewshot, limit)


def evaluate_lm(lm, tasks, num_fewshot=None, limit=None) -> tuple[list[Score], dict]:
    from lm_eval import simple_evaluate

    was_training = getattr(lm.model, "training", False)
    lm.model.eval()
    try:
        with _without_environment_report():
            out = simple_evaluate(
                model=lm,
                tasks=lm_eval_specs(tasks),
                num_fewshot=num_fewshot,
                limit=limit,
                task_manager=task_manager(tasks),
                log_samples=False,
                verbosity="ERROR",
                bootstrap_iters=1000,
            )
    finally:
        if was_training:
            lm.model.train()
    return scores_from(out["results"]), {k: out[k] for k in ("results", "n-shot", "versions") if k in out}


@contextlib.contextmanager
def _without_environment_report():
    """simple_evaluate ends by collecting torch's environment report (~10 s of subprocesses: pip, conda,
    nvidia-smi) and the cwd's git hash (printing 'fatal: not a git repository' outside one). Neither is a
    score; skip both."""
    from lm_eval import evaluator

    saved = evaluator.add_env_info, evaluator.get_git_commit_hash
    evaluator.add_env_info, evaluator.get_git_commit_hash = (lambda storage: None), (lambda: None)
    try:
        yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = saved


def scores_from(results: dict) -> list[Score]:
    scores = []
    for task, metrics in results.items():
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            name, filt = key.split(",", 1)
            stderr = metrics.get(f"{name}_stderr,{filt}")
            stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
            scores.append(Score(task, name if filt == "none" else f"{name}[{filt}]", float(value), stderr))
    return scores
