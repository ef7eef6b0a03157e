"""`tuning-core eval`: lm-eval tasks or a labelled test set, on a tuned model (and optionally its base).

Everything a user can get wrong is checked before a model loads; models load through
`tuning_core.plugin_api.load_for_inference`, the loader `tuning-core infer` uses.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tuning_core.plugin_api import ConfigError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="A tuned output directory (LoRA / aLoRA / prompt-tuning adapter, full or merged "
        "model) or a base model directory.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--tasks",
        help="Comma-separated lm-eval tasks: task YAML files, folders of them, or names "
        "of tasks in examples/eval_tasks (local data only; see docs/eval.md).",
    )
    what.add_argument("--data", help="A JSONL test set to generate for and score (exact match, micro/macro F1).")
    parser.add_argument("--num_fewshot", type=int, default=None, help="Few-shot examples per prompt (lm-eval).")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first N examples of each task.")
    parser.add_argument("--batch_size", type=int, default=8, help="Requests (or texts) run together.")
    parser.add_argument(
        "--output_path",
        default="eval_results.json",
        help="JSON file for the scores; --compare_base writes a PNG chart next to it and --data a *_predictions.jsonl.",
    )
    parser.add_argument(
        "--compare_base",
        action="store_true",
        help="Also evaluate the base model and print base, tuned and delta per metric.",
    )
    parser.add_argument(
        "--base_model_name_or_path",
        default=None,
        help="Base model of an adapter instead of the one in adapter_config.json (nothing on disk "
        "changes); for a full tuned model, the base that --compare_base compares with.",
    )
    parser.add_argument("--input_field", default="input", help="--data: the field with the prompt.")
    parser.add_argument("--output_field", default="output", help="--data: the field with the expected answer.")
    parser.add_argument(
        "--label_delimiter", default=None, help="--data: split multi-label answers on this string for F1 (e.g. ',')."
    )
    parser.add_argument("--max_new_tokens", type=int, default=20, help="--data: tokens generated per example.")
    parser.add_argument(
        "--torch_dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="Dtype to load the weights in (auto: float32 on CPU).",
    )


@dataclass
class Plan:
    tuned: str
    tuned_base_override: str | None
    base: str | None  # the model --compare_base compares with
    output: Path
    tasks: list | None = None
    examples: list | None = None


def plan(args) -> Plan:
    """Every check that needs no model, so a mistake costs no load time."""
    from tuning_core_eval.tasks import go_offline, parse_task_list, resolve_tasks

    go_offline()
    for flag, value in (
        ("--limit", args.limit),
        ("--batch_size", args.batch_size),
        ("--max_new_tokens", args.max_new_tokens),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: expected a positive integer")
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise ConfigError(f"--num_fewshot {args.num_fewshot}: expected 0 or more")
    output = Path(args.output_path)
    if not output.parent.is_dir():
        raise ConfigError(f"--output_path {args.output_path}: directory {output.parent} does not exist")
    is_adapter, base = check_model(args.model, args.base_model_name_or_path)
    compare_with = None
    if args.compare_base:
        compare_with = base
        if compare_with is None:
            raise ConfigError(
                f"--compare_base: {args.model} is a full model; pass --base_model_name_or_path "
                "with the model it was tuned from"
            )
        check_model(
            compare_with,
            None,
            flag="--base_model_name_or_path" if args.base_model_name_or_path else "the adapter's base model",
        )
    p = Plan(args.model, args.base_model_name_or_path if is_adapter else None, compare_with, output)
    if args.data:
        from tuning_core_eval.scoring import read_examples

        p.examples = read_examples(args.data, args.input_field, args.output_field)[: args.limit]
    else:
        p.tasks = resolve_tasks(parse_task_list(args.tasks), search_dirs=example_task_dirs())
    return p


def check_model(path: str, base_override: str | None, flag: str = "--model") -> tuple[bool, str | None]:
    """(is it an adapter, its base) -- the base of a full model is base_override, if any."""
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(f"{flag} {path}: no such directory")
    config_file = p / "adapter_config.json"
    if not config_file.is_file():
        if not any((p / f).is_file() for f in TOKENIZER_FILES):
            raise ConfigError(
                f"{flag} {path}: no tokenizer there (none of {', '.join(TOKENIZER_FILES)}); "
                "save the tokenizer with the model"
            )
        return False, base_override
    try:
        base = base_override or json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as e:
        raise ConfigError(f"{flag} {path}: cannot read {config_file.name}: {e}") from None
    if not base or not Path(base).is_dir():
        raise ConfigError(
            f"{flag} {path}: the adapter's base model '{base}' is not a directory here; pass --base_model_name_or_path"
        )
    if not any((d / f).is_file() for d in (p, Path(base)) for f in TOKENIZER_FILES):
        raise ConfigError(f"{flag} {path}: no tokenizer with the adapter or its base '{base}'")
    return True, base


def example_task_dirs() -> list[Path]:
    """examples/eval_tasks of a source checkout, so the bundled tasks work by name."""
    here = Path(__file__).resolve()
    return [d for d in (parent / "examples" / "eval_tasks" for parent in here.parents[2:4]) if d.is_dir()]


def evaluate_model(model: str, base_override: str | None, p: Plan, args) -> tuple[list, dict]:
    from tuning_core.plugin_api import load_for_inference

    t0 = time.perf_counter()
    loaded = load_for_inference(model, base_override, args.torch_dtype)
    merged = merge_lora_in_memory(loaded)
    print(
        f"loaded {loaded.description}{' (LoRA merged in memory)' if merged else ''} in {time.perf_counter() - t0:.1f}s"
    )
    if p.examples is not None:
        return _score_data(loaded, p, args)
    from tuning_core_eval.harness import evaluate

    scores, raw = evaluate(loaded.model, loaded.tokenizer, p.tasks, args.num_fewshot, args.limit, args.batch_size)
    return scores, {"lm_eval": raw}


def merge_lora_in_memory(loaded) -> bool:
    """Fold a plain LoRA adapter into its (unquantized) base: the same function, without peft's per-layer
    detour on every forward (half the speed of the merged model on small models; benchmarks/eval.py).
    Quantized bases, aLoRA (active only after its invocation tokens) and other adapters stay as loaded."""
    import torch

    config = getattr(loaded.model, "active_peft_config", None)
    if config is None or str(getattr(config, "peft_type", "")).split(".")[-1] != "LORA":
        return False
    if getattr(config, "alora_invocation_tokens", None):
        return False
    wrapped = [m for m in loaded.model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    if not wrapped or any(type(m.base_layer) not in (torch.nn.Linear, torch.nn.Embedding) for m in wrapped):
        return False
    loaded.model = loaded.model.merge_and_unload()
    return True


def _score_data(loaded, p: Plan, args) -> tuple[list, dict]:
    from tuning_core.plugin_api import generate_greedy
    from tuning_core_eval.harness import Score
    from tuning_core_eval.scoring import prediction_from, score

    prompts = [e["input"] for e in p.examples]
    generated = generate_greedy(loaded.model, loaded.tokenizer, prompts, args.max_new_tokens, args.batch_size)
    predictions = [prediction_from(g, prompt) for g, prompt in zip(generated, prompts, strict=False)]
    result = score(predictions, [e["target"] for e in p.examples], args.label_delimiter)
    name = Path(args.data).stem
    scores = [Score(name, m, result[m], None) for m in ("exact_match", "micro_f1", "macro_f1")]
    return scores, {"data": result, "predictions": predictions}


def run(args) -> int:
    from tuning_core_eval import report

    p = plan(args)
    tuned_scores, tuned_raw = evaluate_model(p.tuned, p.tuned_base_override, p, args)
    out = {"model": p.tuned, "scores": [s.as_dict() for s in tuned_scores]}
    predictions = {"": tuned_raw.pop("predictions", None)}
    out.update(tuned_raw)
    if p.base is None:
        print(report.score_table(tuned_scores))
    else:
        base_scores, base_raw = evaluate_model(p.base, None, p, args)
        predictions["_base"] = base_raw.pop("predictions", None)
        rows = report.compare_rows(base_scores, tuned_scores)
        out.update(base_model=p.base, comparison=rows, base={"scores": [s.as_dict() for s in base_scores], **base_raw})
        print(report.compare_table(rows))
        png = p.output.with_suffix(".png")
        report.plot_compare(rows, png, title=f"{Path(p.tuned).resolve().name} vs base")
        print(f"chart: {png}")
    if p.examples is not None:
        from tuning_core_eval.scoring import write_predictions

        for suffix, preds in predictions.items():
            if preds is not None:
                path = p.output.with_name(f"{p.output.stem}_predictions{suffix}.jsonl")
                write_predictions(path, p.examples, preds)
                print(f"predictions: {path}")
    report.write_json(p.output, out)
    print(f"scores: {p.output}")
    return 0
