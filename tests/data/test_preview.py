"""render_preview: trained and masked text told apart, counts, JSON."""

import json

from datasets import Dataset

from tuning_core.data.pipeline import ProcessedData
from tuning_core.data.preview import render_preview


def dataset(tok, prompt, completion):
    p = tok(prompt)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return Dataset.from_dict({"input_ids": [p + c], "labels": [[-100] * len(p) + c]})


def test_markers_keep_sentencepiece_spaces(sp_tok):
    # Decoded alone, "▁complaint" would lose its space; the preview must show it.
    lines = render_preview(dataset(sp_tok, "### Label:", " complaint"), sp_tok, n=5, color=False).splitlines()
    assert lines == [
        "(trained text is between [[ and ]]; ↵ marks a newline)",
        "--- example 0: 5 tokens, 2 trained, 3 masked ---",
        "<s> ### Label:[[ complaint</s>]]",
    ]


def test_newlines_visible_and_summary(bpe_tok):
    data = ProcessedData(
        dataset(bpe_tok, "a\n### Label:", "\nb"),
        stats={"format": "text_field", "num_truncated": 1, "max_seq_length": 8, "num_dropped_no_labels": 2},
    )
    lines = render_preview(data, bpe_tok, n=1, color=False).splitlines()
    assert lines[0] == "data: format text_field, 1 examples, 1 truncated to 8 tokens, 2 dropped with nothing to train"
    assert lines[-3:] == ["<s>a↵", "### Label:[[↵", "b</s>]]"]


def test_colour(bpe_tok):
    text = render_preview(dataset(bpe_tok, "x:", " y"), bpe_tok, n=1, color=True)
    assert "\x1b[90m<s>x:\x1b[0m\x1b[32m y</s>\x1b[0m" in text and "[[" not in text


def test_json(bpe_tok):
    ds = dataset(bpe_tok, "x:", " y")
    (line,) = render_preview(ds, bpe_tok, n=3, as_json=True).splitlines()
    row = json.loads(line)
    assert row["input_ids"] == ds[0]["input_ids"] and row["labels"] == ds[0]["labels"]
    assert row["trained_text"] == " y</s>" and row["num_tokens"] == len(ds[0]["input_ids"])
