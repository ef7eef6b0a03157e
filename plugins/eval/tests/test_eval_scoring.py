"""--data scoring: exact match and F1 over labels, checked against scikit-learn."""

import random

import pytest

from tuning_core_eval.scoring import labels_of, prediction_from, read_examples, score


@pytest.mark.parametrize("delimiter", [None, ","])
def test_f1_matches_sklearn(delimiter):
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    rng = random.Random(0)
    pool = ["complaint", "no complaint", "refund", "delay"]
    join = (delimiter or ",").join
    targets = [join(rng.sample(pool, rng.randint(1, 2 if delimiter else 1))) for _ in range(50)]
    preds = [t if rng.random() < 0.5 else join(rng.sample(pool + ["junk"], 1)) for t in targets]
    got = score(preds, targets, delimiter)
    mlb = MultiLabelBinarizer()
    mlb.fit([labels_of(x, delimiter) for x in targets + preds])
    y_true = mlb.transform([labels_of(t, delimiter) for t in targets])
    y_pred = mlb.transform([labels_of(p, delimiter) for p in preds])
    assert got["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro", zero_division=0))
    assert got["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert got["exact_match"] == pytest.approx(sum(p == t for p, t in zip(preds, targets, strict=False)) / 50)


def test_prediction_is_the_first_line_of_the_continuation():
    assert prediction_from("### Label: no complaint\n### Text: x", "### Label:") == "no complaint"
    assert prediction_from("something else", "### Label:") == "something else"
    assert prediction_from("### Label:", "### Label:") == ""


def test_read_examples_errors_name_file_line_and_field(tmp_path):
    from tuning_core.plugin_api import ConfigError

    bad = tmp_path / "t.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\n{"input": "a"}\n')
    with pytest.raises(ConfigError, match=r"t.jsonl line 2: no string field 'output' \(--output_field\)"):
        read_examples(str(bad), "input", "output")
    with pytest.raises(ConfigError, match="no such file"):
        read_examples(str(tmp_path / "nope.jsonl"), "input", "output")
