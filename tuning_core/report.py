"""`tuning-core report OUTPUT_DIR`: loss curves (PNG) and a short summary from training_logs.jsonl."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

from tuning_core.errors import UserError

LOG_FILE = "training_logs.jsonl"
SERIES = {"training_loss": "training", "validation_loss": "validation"}


@dataclass
class Point:
    step: int
    epoch: float
    value: float
    timestamp: float | None  # seconds since the epoch


@dataclass
class TrainingLogs:
    training: list[Point] = field(default_factory=list)
    validation: list[Point] = field(default_factory=list)
    skipped_lines: int = 0


def read_logs(path: Path) -> TrainingLogs:
    """Parse the JSONL; unreadable lines (e.g. a line cut short by a crash) are counted, not fatal.

    A resumed run appends to the same file, so a step logged twice keeps its latest value.
    """
    series: dict[str, dict[int, Point]] = {name: {} for name in SERIES}
    skipped = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                data = row["data"]
                point = Point(
                    int(data["step"]),
                    float(data.get("epoch") or 0.0),
                    float(data["value"]),
                    _timestamp(data.get("timestamp")),
                )
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if row.get("name") in series:
                series[row["name"]][point.step] = point
    return TrainingLogs(*(sorted(series[n].values(), key=lambda p: p.step) for n in SERIES), skipped_lines=skipped)


def _timestamp(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def summarize(logs: TrainingLogs) -> str:
    lines = []
    for label, points in (("training loss", logs.training), ("validation loss", logs.validation)):
        if not points:
            lines.append(f"{label}: no values logged")
            continue
        best = min(points, key=lambda p: p.value)
        lines.append(
            f"{label}: {len(points)} values over steps {points[0].step}-{points[-1].step}; "
            f"first {points[0].value:.4f}, last {points[-1].value:.4f}, "
            f"min {best.value:.4f} at step {best.step}"
        )
    all_points = logs.training + logs.validation
    if all_points:
        lines.insert(0, f"steps: {max(p.step for p in all_points)} (epoch {max(p.epoch for p in all_points):g})")
    stamps = [p.timestamp for p in all_points if p.timestamp is not None]
    if len(stamps) >= 2:
        lines.append(f"runtime: {_duration(max(stamps) - min(stamps))} from first to last logged loss")
    if logs.skipped_lines:
        lines.append(f"note: skipped {logs.skipped_lines} unreadable line(s)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def plot(logs: TrainingLogs, out_png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if logs.training:
            ax.plot(
                [p.step for p in logs.training],
                [p.value for p in logs.training],
                color="tab:blue",
                label="training loss",
                linewidth=1.5,
            )
        if logs.validation:
            ax.plot(
                [p.step for p in logs.validation],
                [p.value for p in logs.validation],
                color="tab:orange",
                label="validation loss",
                linewidth=1.5,
                marker="o",
                markersize=4,
            )
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_png)
    finally:
        plt.close(fig)


def make_report(output_dir: str, out_png: str | None = None, log_file: str = LOG_FILE) -> tuple[Path, str]:
    """Draw the curves and return (png path, summary text)."""
    root = Path(output_dir)
    log_path = root / log_file
    if not log_path.is_file():
        raise UserError(
            f"no {log_file} in {output_dir}; pass the --output_dir of a training run"
            + ("" if log_file != LOG_FILE else " (and --training_logs_filename if it named another file)")
        )
    logs = read_logs(log_path)
    if not logs.training and not logs.validation:
        raise UserError(f"{log_path} holds no training or validation loss values")
    png = Path(out_png) if out_png else root / "loss_curves.png"
    if not png.parent.is_dir():
        raise UserError(f"--out {png}: directory {png.parent} does not exist")
    plot(logs, png, title=f"loss: {root.resolve().name}")
    return png, summarize(logs)


def add_arguments(parser) -> None:
    parser.add_argument("output_dir", help="The --output_dir of a training run (holds training_logs.jsonl).")
    parser.add_argument("--out", default=None, help="PNG file to write (default: OUTPUT_DIR/loss_curves.png).")
    parser.add_argument(
        "--training_logs_filename",
        default=LOG_FILE,
        help=f"The log's file name, if the run was given one (default: {LOG_FILE}).",
    )


def run(args) -> int:
    png, summary = make_report(args.output_dir, args.out, args.training_logs_filename)
    print(summary)
    print(f"loss curves: {png}")
    return 0
