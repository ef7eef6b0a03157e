"""A second run over the same files, settings and tokenizer is served from the cache, without tokenizing."""

import pytest

from tuning_core.data import masking, prepare_datasets

from .helpers import config, write_jsonl

ROWS = [{"output": "### Text: a\n### Label: b"}, {"output": "### Text: c\n### Label: d"}]


def run(path, tok, **flags):
    flags.setdefault("dataset_text_field", "output")
    flags.setdefault("response_template", "\\n### Label:")
    return prepare_datasets(config(training_data_path=str(path), data_cache=True, **flags), tok)


@pytest.fixture
def no_tokenizing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("tokenized although the result is cached")

    return lambda: monkeypatch.setattr(masking.SpanEncoder, "encode", refuse)


def test_second_run_is_a_cache_hit_without_tokenizing(tmp_path, bpe_tok, no_tokenizing, private_cache):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    first = run(path, bpe_tok)
    assert first.stats["cache_hit"] is False
    no_tokenizing()
    second = run(path, bpe_tok)
    assert second.stats["cache_hit"] is True
    assert second.train.to_dict() == first.train.to_dict()
    assert second.stats["num_examples"] == 2 and second.stats["format"] == "text_field"
    assert any(private_cache.rglob("data.arrow"))


@pytest.mark.parametrize("change", ["content", "settings", "tokenizer", "template"])
def test_any_change_misses(tmp_path, bpe_tok, sp_tok, change):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    run(path, bpe_tok)
    if change == "content":  # same size, one character different
        write_jsonl(path, [{"output": "### Text: a\n### Label: e"}, ROWS[1]])
        out = run(path, bpe_tok)
    elif change == "settings":
        out = run(path, bpe_tok, max_seq_length=100)  # same result, other settings
    elif change == "tokenizer":
        out = run(path, sp_tok)
    else:
        out = run(path, bpe_tok, response_template="### Label:")
    assert out.stats["cache_hit"] is False


def test_renamed_file_with_same_content_hits(tmp_path, bpe_tok):
    a = write_jsonl(tmp_path / "a.jsonl", ROWS)
    b = write_jsonl(tmp_path / "b.jsonl", ROWS)
    run(a, bpe_tok)
    assert run(b, bpe_tok).stats["cache_hit"] is True


def test_cache_off_writes_nothing(tmp_path, bpe_tok, private_cache):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    out = prepare_datasets(
        config(
            training_data_path=str(path),
            dataset_text_field="output",
            response_template="\\n### Label:",
            data_cache=False,
        ),
        bpe_tok,
    )
    assert len(out.train) == 2
    assert not private_cache.exists() or not any(private_cache.rglob("*.arrow"))


def test_damaged_entry_is_rebuilt(tmp_path, bpe_tok, private_cache):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    expected = run(path, bpe_tok).train.to_dict()
    (arrow,) = private_cache.rglob("data.arrow")
    arrow.write_bytes(b"garbage")
    again = run(path, bpe_tok)
    assert again.stats["cache_hit"] is False and again.train.to_dict() == expected
    assert run(path, bpe_tok).stats["cache_hit"] is True
