"""`tuning-core report`: the PNG really shows the curves; the summary has the right numbers."""

import datetime
import json

import numpy as np
import pytest

from tuning_core.cli import main
from tuning_core.report import make_report

BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib tab:blue (training)
ORANGE = np.array([0xFF, 0x7F, 0x0E]) / 255  # tab:orange (validation)


def write_logs(path, train, val=(), start=datetime.datetime(2025, 1, 1, 12, 0, 0), extra_lines=()):
    lines = []
    for name, series in (("training_loss", train), ("validation_loss", val)):
        for step, value in series:
            ts = (start + datetime.timedelta(seconds=3 * step)).isoformat()
            lines.append(
                json.dumps({"name": name, "data": {"epoch": step / 10, "step": step, "timestamp": ts, "value": value}})
            )
    path.write_text("\n".join(lines + list(extra_lines)) + "\n")


def colour_fraction(img, rgb):
    return float((np.abs(img[..., :3] - rgb).max(axis=-1) < 0.08).mean())


TRAIN = [(1, 2.0), (2, 1.6), (3, 1.7), (4, 1.2), (5, 1.0), (6, 0.8), (7, 0.6), (8, 0.4), (9, 0.45), (10, 0.5)]
VAL = [(5, 1.5), (10, 1.3)]


def test_png_and_summary(tmp_path):
    import matplotlib.image

    write_logs(tmp_path / "training_logs.jsonl", TRAIN, VAL)
    png, summary = make_report(str(tmp_path))
    assert png == tmp_path / "loss_curves.png"
    img = matplotlib.image.imread(png)
    assert img.shape[:2] == (450, 800)
    assert (img[..., :3] < 0.9).any(axis=-1).mean() > 0.01  # not blank
    assert colour_fraction(img, BLUE) > 0.001 and colour_fraction(img, ORANGE) > 0.0005
    assert "steps: 10 (epoch 1)" in summary
    assert "training loss: 10 values over steps 1-10; first 2.0000, last 0.5000, min 0.4000 at step 8" in summary
    assert "validation loss: 2 values over steps 5-10; first 1.5000, last 1.3000, min 1.3000 at step 10" in summary
    assert "runtime: 0m 27s" in summary


def test_training_only_has_no_validation_curve(tmp_path):
    import matplotlib.image

    write_logs(tmp_path / "training_logs.jsonl", TRAIN)
    png, summary = make_report(str(tmp_path), str(tmp_path / "custom.png"))
    img = matplotlib.image.imread(png)
    assert colour_fraction(img, BLUE) > 0.001
    assert colour_fraction(img, ORANGE) == 0.0
    assert "validation loss: no values logged" in summary


def test_resumed_run_and_damaged_lines(tmp_path):
    # A resumed run re-logs steps 9-10; a crash left half a line.
    write_logs(
        tmp_path / "training_logs.jsonl",
        TRAIN + [(9, 0.3), (10, 0.2)],
        extra_lines=['{"name": "training_loss", "data": {"epo'],
    )
    _, summary = make_report(str(tmp_path))
    assert "10 values over steps 1-10; first 2.0000, last 0.2000, min 0.2000 at step 10" in summary
    assert "skipped 1 unreadable line(s)" in summary


def test_cli(tmp_path, capsys, builtin_plugins_only):
    write_logs(tmp_path / "training_logs.jsonl", TRAIN, VAL)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "min 0.4000 at step 8" in out and str(tmp_path / "loss_curves.png") in out
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "no training_logs.jsonl in"),
        ('{"name": "other", "data": {"step": 1, "value": 1.0}}\n', "holds no training or validation loss values"),
    ],
)
def test_cli_errors(tmp_path, capsys, builtin_plugins_only, content, needle):
    if content is not None:
        (tmp_path / "training_logs.jsonl").write_text(content)
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
