"""The data configs in examples/data_configs run as their comments say."""

from pathlib import Path

import pytest

from tuning_core.data import prepare_datasets

from .helpers import config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data_configs"
FLAGS = {"jinja_template.yaml": {"dataset_text_field": "formatted_text", "response_template": "\\n### Label:"}}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_config(name, bpe_tok, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # data_paths are found relative to the config file
    out = prepare_datasets(config(data_config_path=str(EXAMPLES / name), **FLAGS.get(name, {})), bpe_tok)
    rows = list(out.train)
    assert len(rows) >= 200
    for row in rows[:20]:
        trained = [t for t in row["labels"] if t != -100]
        assert trained and len(row["input_ids"]) == len(row["labels"])
    if name == "mixed_with_split.yaml":
        assert len(out.eval) == 48  # 24 of each 240
        assert set(out.stats["datasets"]) == {"labels_only", "whole_text"}
