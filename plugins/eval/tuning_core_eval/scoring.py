"""`tuning-core eval --data`: generate for a test set and score the labels, as fms-hf-tuning's
scripts/run_evaluation.py does (exact-match accuracy, micro and macro F1 over labels)."""

from __future__ import annotations

import json
from pathlib import Path

from tuning_core.plugin_api import ConfigError


def read_examples(path: str, input_field: str, output_field: str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--data {path}: no such file")
    rows = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ConfigError(f"--data {path} line {lineno}: not JSON ({e})") from None
            for flag, field in (("--input_field", input_field), ("--output_field", output_field)):
                if not isinstance(row, dict) or not isinstance(row.get(field), str):
                    raise ConfigError(f"--data {path} line {lineno}: no string field '{field}' ({flag})")
            rows.append({"input": row[input_field], "target": row[output_field]})
    if not rows:
        raise ConfigError(f"--data {path} holds no examples")
    return rows


def prediction_from(generated: str, prompt: str) -> str:
    """The continuation's first line, stripped: a label, not the rambling after it."""
    text = generated.removeprefix(prompt)
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""


def labels_of(text: str, delimiter: str | None) -> set[str]:
    parts = text.split(delimiter) if delimiter else [text]
    return {p.strip() for p in parts if p.strip()}


def score(predictions: list[str], targets: list[str], delimiter: str | None = None) -> dict:
    """Exact match over whole answers; F1 over labels (a multi-label answer is split on ``delimiter``)."""
    n = len(targets)
    exact = sum(p.strip() == t.strip() for p, t in zip(predictions, targets, strict=False))
    classes: dict[str, list[int]] = {}  # label -> [tp, fp, fn]
    for pred, target in zip(predictions, targets, strict=False):
        p, t = labels_of(pred, delimiter), labels_of(target, delimiter)
        for label in p | t:
            c = classes.setdefault(label, [0, 0, 0])
            c[0] += label in p and label in t
            c[1] += label in p and label not in t
            c[2] += label in t and label not in p
    tp, fp, fn = (sum(c[i] for c in classes.values()) for i in range(3))
    per_class = {label: _f1(*c) for label, c in sorted(classes.items())}
    macro = sum(per_class.values()) / len(per_class) if per_class else 0.0  # every label seen, as sklearn
    return {
        "num_examples": n,
        "exact_match": exact / n if n else 0.0,
        "micro_f1": _f1(tp, fp, fn),
        "macro_f1": macro,
        "per_label_f1": per_class,
    }


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def write_predictions(path: Path, rows: list[dict], predictions: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps(
                {
                    "input": row["input"],
                    "target": row["target"],
                    "prediction": pred,
                    "correct": pred.strip() == row["target"].strip(),
                },
                ensure_ascii=False,
            )
            + "\n"
            for row, pred in zip(rows, predictions, strict=False)
        )
