"""Pre-formatted text (--dataset_text_field) with --response_template: the exact label boundary."""

import pytest

from tuning_core.data import prepare_datasets
from tuning_core.errors import ConfigError, DataError

from .helpers import MASK, config, label_tokens, tokens, write_jsonl

TWEET = "### Text: Customer support is still missing\n\n### Label: complaint"
UNICODE = "### Text: Ünïcødé ✓ 日本語\n\n### Label: 日本語 ✓"


def run(tmp_path, rows, tokenizer, **flags):
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    flags.setdefault("dataset_text_field", "output")
    return prepare_datasets(config(training_data_path=str(path), **flags), tokenizer)


def one(tmp_path, tok, text, **flags):
    out = run(tmp_path, [{"output": text}], tokenizer=tok, **flags)
    row = out.train[0]
    return tokens(tok, row["input_ids"]), label_tokens(tok, row["labels"]), out


# Expected sequences, token by token. Masked positions show as MASK; the response template (which starts
# with a newline, typed as a literal "\n" the way a shell passes it) and the BOS stay masked; the completion
# and the appended EOS are trained.
@pytest.mark.parametrize(
    "name,text,ids,labels",
    [
        (
            "bpe",
            TWEET,
            [
                "<s>",
                "###",
                "ĠText",
                ":",
                "ĠCustomer",
                "Ġsupport",
                "Ġis",
                "Ġstill",
                "Ġmissing",
                "Ċ",
                "Ċ",
                "###",
                "ĠLabel",
                ":",
                "Ġcomplaint",
                "</s>",
            ],
            [MASK] * 14 + ["Ġcomplaint", "</s>"],
        ),
        (
            "sp",
            TWEET,
            [
                "<s>",
                "▁###",
                "▁Text:",
                "▁Customer",
                "▁support",
                "▁is",
                "▁still",
                "▁missing\n\n###",
                "▁Label:",
                "▁complaint",
                "</s>",
            ],
            [MASK] * 9 + ["▁complaint", "</s>"],
        ),
        (
            "bpe",
            UNICODE,
            [
                "<s>",
                "###",
                "ĠText",
                ":",
                "Ġ",
                "Ã",
                "ľ",
                "n",
                "Ã",
                "¯",
                "c",
                "Ã",
                "¸",
                "d",
                "Ã",
                "©",
                "Ġ",
                "â",
                "ľ",
                "ĵ",
                "Ġ",
                "æ",
                "Ĺ",
                "¥",
                "æ",
                "ľ",
                "¬",
                "è",
                "ª",
                "ŀ",
                "Ċ",
                "Ċ",
                "###",
                "ĠLabel",
                ":",
                "Ġ",
                "æ",
                "Ĺ",
                "¥",
                "æ",
                "ľ",
                "¬",
                "è",
                "ª",
                "ŀ",
                "Ġ",
                "â",
                "ľ",
                "ĵ",
                "</s>",
            ],
            [MASK] * 35 + ["Ġ", "æ", "Ĺ", "¥", "æ", "ľ", "¬", "è", "ª", "ŀ", "Ġ", "â", "ľ", "ĵ", "</s>"],
        ),
        (
            "sp",
            UNICODE,
            ["<s>", "▁###", "▁Text:", "▁Ünïcødé", "▁✓", "▁日本語", "\n\n###", "▁Label:", "▁日本語", "▁✓", "</s>"],
            [MASK] * 8 + ["▁日本語", "▁✓", "</s>"],
        ),
    ],
)
def test_exact_labels(tmp_path, request, name, text, ids, labels):
    tok = request.getfixturevalue(f"{name}_tok")
    got_ids, got_labels, out = one(tmp_path, tok, text, response_template="\\n### Label:")
    assert got_ids == ids
    assert got_labels == labels
    assert out.stats["format"] == "text_field"
    assert out.stats["num_examples"] == 1 and out.stats["num_truncated"] == 0


def test_sentencepiece_template_inside_a_token(tmp_path, sp_tok):
    # "\n\n###" is one sentencepiece token here, so the template's own token ids never occur in the sequence:
    # matching template ids (fms-hf-tuning's method) cannot find it, splitting on the text can.
    ids, labels, _ = one(tmp_path, sp_tok, TWEET, response_template="\n### Label:")
    assert "▁missing\n\n###" in ids
    assert [x for x in labels if x != MASK] == ["▁complaint", "</s>"]


def test_last_occurrence_of_the_template_starts_the_response(tmp_path, bpe_tok):
    text = "### Input: a\n### Output: b\n### Output: no complaint"
    ids, labels, _ = one(tmp_path, bpe_tok, text, response_template="\n### Output:")
    assert [x for x in labels if x != MASK] == ["Ġno", "Ġcomplaint", "</s>"]
    assert ids[-3:] == ["Ġno", "Ġcomplaint", "</s>"]


@pytest.mark.parametrize(
    "template,completion",
    [
        ("### Label: ", "complaint"),  # ends in a space: the next token would swallow it
        ("### Lab", "el: complaint"),  # ends inside a word
    ],
)
def test_template_ending_inside_a_token_is_split_exactly(tmp_path, tok, template, completion):
    text = "### Text: x\n" + template + completion
    out = run(tmp_path, [{"output": text}], tokenizer=tok, response_template=template)
    row = out.train[0]
    trained = [i for i, lab in zip(row["input_ids"], row["labels"], strict=False) if lab != -100]
    masked = [i for i, lab in zip(row["input_ids"], row["labels"], strict=False) if lab == -100]
    # The pieces tokenize on their own: the prompt exactly as a prompt (with BOS), the completion with no
    # invented leading space; nothing of the template is trained and all of the completion is.
    assert tok.decode(masked, skip_special_tokens=True).strip() == ("### Text: x\n" + template).strip()
    assert trained[-1] == tok.eos_token_id
    assert tok.decode(trained[:-1]) == completion
    assert tok.decode(row["input_ids"], skip_special_tokens=True).strip() == text
    assert out.stats["num_split_at_border"] == 1


def test_every_bundled_example_matches_separate_tokenization(tmp_path, tok, twitter_data):
    """Oracle: the masked part is exactly the prompt tokenized alone, the trained part the rest plus EOS."""
    import json

    rows = [json.loads(line) for line in twitter_data.read_text().splitlines()]
    out = prepare_datasets(
        config(training_data_path=str(twitter_data), dataset_text_field="output", response_template="\\n### Label:"),
        tok,
    )
    assert len(out.train) == len(rows)
    for row, ex in zip(rows, out.train, strict=False):
        text = row["output"]
        cut = text.rfind("\n### Label:") + len("\n### Label:")
        prompt_ids = tok(text[:cut])["input_ids"]
        full_ids = tok(text)["input_ids"]
        assert ex["input_ids"] == full_ids + [tok.eos_token_id]
        assert ex["labels"] == [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :] + [tok.eos_token_id]
        assert tok.decode([x for x in ex["labels"] if x != -100]).strip() == row["text_label"] + "</s>"


def test_without_response_template_everything_but_bos_is_trained(tmp_path, bpe_tok):
    ids, labels, _ = one(tmp_path, bpe_tok, "a b")
    assert ids == ["<s>", "a", "Ġb", "</s>"]
    assert labels == [MASK, "a", "Ġb", "</s>"]


FULL = [
    "<s>",
    "###",
    "ĠText",
    ":",
    "ĠCustomer",
    "Ġsupport",
    "Ġis",
    "Ġstill",
    "Ġmissing",
    "Ċ",
    "Ċ",
    "###",
    "ĠLabel",
    ":",
    "Ġcomplaint",
    "</s>",
]  # TWEET with the BPE tokenizer: 16 tokens with EOS


@pytest.mark.parametrize("limit,truncated", [(17, 0), (16, 0), (15, 1)])
def test_truncation_at_the_limit(tmp_path, bpe_tok, limit, truncated):
    ids, labels, out = one(tmp_path, bpe_tok, TWEET, response_template="\n### Label:", max_seq_length=limit)
    assert ids == FULL[:limit]
    assert labels == ([MASK] * 14 + ["Ġcomplaint", "</s>"])[:limit]
    assert out.stats["num_truncated"] == truncated


def test_truncated_before_the_response_is_dropped_with_a_warning(tmp_path, bpe_tok, caplog):
    rows = [{"output": TWEET}, {"output": "### Text: a\n### Label: b"}]
    with caplog.at_level("WARNING", logger="tuning_core.data"):
        out = run(tmp_path, rows, tokenizer=bpe_tok, response_template="\\n### Label:", max_seq_length=14)
    # TWEET cut to 14 tokens keeps no completion token: it is dropped, counted and reported, never trained.
    assert len(out.train) == 1
    assert label_tokens(bpe_tok, out.train[0]["labels"])[-2:] == ["Ġb", "</s>"]
    assert out.stats["num_truncated"] == 1 and out.stats["num_dropped_no_labels"] == 1
    assert "dropped 1 examples with no token to train on" in caplog.text
    assert "example 0 (" in caplog.text and "line 1" in caplog.text


def test_all_examples_untrained_is_an_error(tmp_path, bpe_tok):
    with pytest.raises(DataError, match="no example is left to train on") as e:
        run(tmp_path, [{"output": TWEET}], tokenizer=bpe_tok, response_template="\\n### Label:", max_seq_length=5)
    assert e.value.exit_code == 1


def test_missing_template_fails_with_count_and_indices(tmp_path, bpe_tok):
    rows = [{"output": TWEET}, {"output": "no template"}, {"output": TWEET}, {"output": "none here either"}]
    with pytest.raises(DataError) as e:
        run(tmp_path, rows, tokenizer=bpe_tok, response_template="\\n### Label:")
    msg = str(e.value)
    assert "does not occur in 2 of 4 examples" in msg
    assert "example 1 (" in msg and "line 2" in msg and "example 3 (" in msg and "line 4" in msg
    assert "--skip_missing_response_template" in msg and "'\\n### Label:'" in msg


def test_missing_template_can_be_skipped_with_a_warning(tmp_path, bpe_tok, caplog):
    rows = [{"output": TWEET}, {"output": "no template"}, {"output": TWEET}]
    with caplog.at_level("WARNING", logger="tuning_core.data"):
        out = run(
            tmp_path, rows, tokenizer=bpe_tok, response_template="\\n### Label:", skip_missing_response_template=True
        )
    assert len(out.train) == 2 and out.stats["num_skipped_no_template"] == 1
    assert "dropped 1 examples without the response template" in caplog.text


def test_missing_text_field_names_field_and_example(tmp_path, bpe_tok):
    rows = [{"output": TWEET}, {"text": TWEET}]
    with pytest.raises(DataError, match=r"example 1 \(.*train.jsonl line 2\) has no field 'output'"):
        run(tmp_path, rows, tokenizer=bpe_tok, response_template="\\n### Label:")
    with pytest.raises(DataError, match=r"field 'body' \(named by --dataset_text_field\) is not in the data"):
        run(tmp_path, rows, tokenizer=bpe_tok, dataset_text_field="body")


def test_response_template_without_text_field_is_a_config_error(tmp_path, bpe_tok):
    with pytest.raises(ConfigError, match="--response_template needs --dataset_text_field") as e:
        run(tmp_path, [{"output": TWEET}], tokenizer=bpe_tok, dataset_text_field=None, response_template="x")
    assert e.value.exit_code == 2
