"""Pretokenized records (input_ids, optional labels): used as given, truncated, validated."""

import pytest

from tuning_core.data import prepare_datasets
from tuning_core.errors import ConfigError, DataError

from .helpers import config, write_jsonl


def run(tmp_path, rows, tokenizer, **flags):
    path = write_jsonl(tmp_path / "tok.jsonl", rows)
    return prepare_datasets(config(training_data_path=str(path), **flags), tokenizer)


def test_labels_kept_and_missing_labels_train_everything(tmp_path, bpe_tok):
    rows = [{"input_ids": [1, 5, 6, 7], "labels": [-100, -100, 6, 7]}, {"input_ids": [1, 9, 9, 9]}]
    out = run(tmp_path, rows[:1], bpe_tok)
    assert out.stats["format"] == "pretokenized"
    assert out.train[0] == {"input_ids": [1, 5, 6, 7], "labels": [-100, -100, 6, 7]}  # no EOS added
    out = run(tmp_path, [{"input_ids": [1, 9, 9, 9]}], bpe_tok)
    assert out.train[0] == {"input_ids": [1, 9, 9, 9], "labels": [1, 9, 9, 9]}


def test_truncation_and_all_masked_rows(tmp_path, bpe_tok, caplog):
    rows = [
        {"input_ids": [1, 2, 3, 4, 5], "labels": [-100, 2, 3, 4, 5]},
        {"input_ids": [1, 2, 3, 4], "labels": [-100, -100, -100, 4]},
    ]
    with caplog.at_level("WARNING", logger="tuning_core.data"):
        out = run(tmp_path, rows, bpe_tok, max_seq_length=3)
    assert out.train["input_ids"] == [[1, 2, 3]] and out.train["labels"] == [[-100, 2, 3]]
    assert out.stats["num_truncated"] == 2 and out.stats["num_dropped_no_labels"] == 1
    assert "example 1 (" in caplog.text


@pytest.mark.parametrize(
    "row,message",
    [
        ({"input_ids": "1 2 3"}, r"example 1 \(.*line 2\): 'input_ids' must be a non-empty list of integers"),
        ({"input_ids": []}, r"example 1 .*'input_ids' must be a non-empty list of integers"),
        ({"input_ids": [1, 2.5]}, r"example 1 .*'input_ids' must be a non-empty list of integers"),
        ({"input_ids": [1, 2], "labels": [1]}, r"example 1 .*'labels' has 1 entries but 'input_ids' has 2"),
        ({"input_ids": [1, 2], "labels": None}, r"example 1 .*'labels' must be a list of integers"),
    ],
)
def test_bad_rows(tmp_path, bpe_tok, row, message):
    with pytest.raises(DataError, match=message):
        run(tmp_path, [{"input_ids": [1, 2], "labels": [1, 2]}, row], bpe_tok)


@pytest.mark.parametrize(
    "flags,message",
    [
        (dict(dataset_text_field="output", response_template="x"), "already tokenized .* --dataset_text_field"),
        (
            dict(data_formatter_template="{{a}}", response_template="x"),
            "already tokenized .* --data_formatter_template",
        ),
        (dict(chat_template="{{ x }}"), "already tokenized .* --chat_template does not apply"),
    ],
)
def test_templates_with_pretokenized_data_conflict(tmp_path, bpe_tok, flags, message):
    with pytest.raises(ConfigError, match=message) as e:
        run(tmp_path, [{"input_ids": [1, 2]}], bpe_tok, **flags)
    assert e.value.exit_code == 2


def test_ids_are_checked_against_the_model_vocabulary_when_it_is_larger(tmp_path, bpe_tok):
    """A model may embed more rows than its tokenizer has tokens (padded vocabularies); those ids are valid."""
    import dataclasses
    import json
    from types import SimpleNamespace

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"vocab_size": len(bpe_tok) + 100}))
    path = write_jsonl(tmp_path / "tok.jsonl", [{"input_ids": [1, len(bpe_tok) + 99]}])
    settings = dataclasses.asdict(config(training_data_path=str(path)))
    out = prepare_datasets(SimpleNamespace(**settings, model_name_or_path=str(model_dir)), bpe_tok)
    assert out.train[0]["input_ids"] == [1, len(bpe_tok) + 99]
    with pytest.raises(ConfigError, match=rf"holds {len(bpe_tok) + 99}, outside the vocabulary"):
        prepare_datasets(config(training_data_path=str(path)), bpe_tok)  # no model: the tokenizer bounds ids
    path = write_jsonl(tmp_path / "tok2.jsonl", [{"input_ids": [1, len(bpe_tok) + 100]}])
    settings = dataclasses.asdict(config(training_data_path=str(path)))
    with pytest.raises(ConfigError, match=rf"expected ids from 0 to {len(bpe_tok) + 99}"):
        prepare_datasets(SimpleNamespace(**settings, model_name_or_path=str(model_dir)), bpe_tok)
