"""Scores as a table, a JSON file and (for --compare_base) a PNG bar chart in `tuning-core report`'s style."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tuning_core_eval.harness import Score


def compare_rows(base: list[Score], tuned: list[Score]) -> list[dict]:
    by_key = {(s.task, s.metric): s for s in base}
    rows = []
    for t in tuned:
        b = by_key.get((t.task, t.metric))
        if b is None:
            continue
        rows.append(
            {
                "task": t.task,
                "metric": t.metric,
                "base": b.value,
                "tuned": t.value,
                "delta": t.value - b.value,
                "stderr": t.stderr,
                "base_stderr": b.stderr,
            }
        )
    return rows


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [columns] + [[r[c] if isinstance(r[c], str) else _fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=False)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def score_table(scores: list[Score]) -> str:
    return table([s.as_dict() | {"value": s.value} for s in scores], ["task", "metric", "value", "stderr"])


def compare_table(rows: list[dict]) -> str:
    return table(rows, ["task", "metric", "base", "tuned", "delta", "stderr"])


def write_json(path: Path, data: dict) -> None:
    """Atomic: an interrupted run never leaves half a results file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def plot_compare(rows: list[dict], out_png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    labels = [f"{r['task']}\n{r['metric']}" for r in rows]
    xs = range(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.5), dpi=100)
    try:
        for offset, key, color in ((-width / 2, "base", "tab:gray"), (width / 2, "tuned", "tab:blue")):
            errs = [r["base_stderr" if key == "base" else "stderr"] or 0.0 for r in rows]
            ax.bar(
                [x + offset for x in xs], [r[key] for r in rows], width, yerr=errs, capsize=3, color=color, label=key
            )
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("score")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_png)
    finally:
        plt.close(fig)
