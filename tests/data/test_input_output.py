"""Records with "input" and "output": the input masked, the output and EOS trained, exact joining rules."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuning_core.data import prepare_datasets
from tuning_core.data.formats import input_output_texts
from tuning_core.data.readers import Records, _Source
from tuning_core.errors import DataError

from .helpers import MASK, config, label_tokens, tokens, write_jsonl

ROWS = [
    {"input": "### Input: Ünïcødé\n### Output:\n", "output": "日本語 ✓"},  # input ends in a newline: no space added
    {"input": "a: ", "output": "b"},  # input ends in a space: the output's first token is cut from it
    {"input": "", "output": "b c"},  # no input: everything after BOS is trained
    {"input": "is a state", "output": "in"},  # neither side has whitespace: a space joins them
]


def run(tmp_path, rows, tokenizer, **flags):
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    return prepare_datasets(config(training_data_path=str(path), **flags), tokenizer)


EXPECTED = {
    "bpe": [
        (
            [
                "<s>",
                "###",
                "Ġ",
                "I",
                "n",
                "p",
                "ut",
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
                "Ċ",
                "###",
                "Ġ",
                "O",
                "ut",
                "p",
                "ut",
                ":",
                "Ċ",
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
            29,
        ),
        (["<s>", "a", ":", "Ġ", "b", "</s>"], 4),
        (["<s>", "b", "Ġc", "</s>"], 1),
        (["<s>", "is", "Ġa", "Ġs", "t", "a", "te", "Ġin", "</s>"], 7),
    ],
    "sp": [
        (["<s>", "▁###", "▁Input:", "▁Ünïcødé", "\n", "###", "▁Output:", "\n", "日", "本語", "▁✓", "</s>"], 8),
        (["<s>", "▁a", ":", "▁", "b", "</s>"], 4),
        (["<s>", "▁b", "▁c", "</s>"], 1),
        (["<s>", "▁is", "▁a", "▁s", "t", "a", "te", "▁in", "</s>"], 7),
    ],
}


@pytest.mark.parametrize("name", ["bpe", "sp"])
def test_exact_labels(tmp_path, request, name):
    tok = request.getfixturevalue(f"{name}_tok")
    out = run(tmp_path, ROWS, tok)
    assert out.stats["format"] == "input_output" and out.stats["num_examples"] == 4
    for row, (want, n_masked) in zip(out.train, EXPECTED[name], strict=False):
        assert tokens(tok, row["input_ids"]) == want
        assert label_tokens(tok, row["labels"]) == [MASK] * n_masked + want[n_masked:]


@pytest.mark.parametrize(
    "inp,out,text",
    [
        ("Q:", "A", "Q: A"),
        ("Q: ", "A", "Q: A"),
        ("Q:\n", "A", "Q:\nA"),
        ("Q:", " A", "Q: A"),
        ("Q:", "\tA", "Q:\tA"),
        ("", "A", "A"),
        ("Q:", "", "Q:"),
    ],
)
def test_joining_space_only_when_neither_side_has_whitespace(inp, out, text):
    records = Records([_Source("x.jsonl", rows=[{"input": inp, "output": out}], lines=[1], names=["input", "output"])])
    texts = input_output_texts(records)
    assert texts.texts == [text]
    assert texts.spans == [[(len(inp), len(text))]]


def test_missing_output_names_field_and_example(tmp_path, bpe_tok):
    rows = [{"input": "a", "output": "b"}, {"input": "a", "output": "b"}, {"input": "c"}]
    with pytest.raises(DataError, match=r"example 2 \(.*train.jsonl line 3\) has no field 'output'") as e:
        run(tmp_path, rows, bpe_tok)
    assert e.value.exit_code == 1


def test_only_input_field_names_the_missing_field(tmp_path, bpe_tok):
    with pytest.raises(DataError, match=r"field 'output' is not in the data"):
        run(tmp_path, [{"input": "a"}], bpe_tok)


def test_null_and_non_text_values_are_errors(tmp_path, bpe_tok):
    with pytest.raises(DataError, match=r"example 1 .*field 'input' is null"):
        run(tmp_path, [{"input": "a", "output": "b"}, {"input": None, "output": "b"}], bpe_tok)
    with pytest.raises(DataError, match=r"example 0 .*field 'output' must be text, not list"):
        run(tmp_path, [{"input": "a", "output": ["b"]}], bpe_tok)


def test_unknown_fields_cannot_be_guessed(tmp_path, bpe_tok):
    with pytest.raises(DataError, match=r"cannot tell the data format from the fields \('prompt', 'answer'\)"):
        run(tmp_path, [{"prompt": "a", "answer": "b"}], bpe_tok)


ALPHABET = "abcdeilnorstuxyz ABCXYZ0123456789:#.,-\n\tÜïø日本語✓"
text = st.text(alphabet=ALPHABET, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(text, text), min_size=1, max_size=6))
def test_property_trained_tokens_decode_to_the_completion(tmp_path_factory, bpe_tok, pairs):
    """Byte-level BPE is lossless, so the trained tokens must decode to exactly the (joined) output plus EOS
    and the masked ones to BOS plus the input, whatever the strings."""
    tmp = tmp_path_factory.mktemp("prop")
    rows = [{"input": i, "output": o} for i, o in pairs]
    out = run(tmp, rows, bpe_tok, max_seq_length=10_000)
    assert len(out.train) == len(rows)  # output + EOS always leaves something to train
    for (inp, outp), row in zip(pairs, out.train, strict=False):
        ids, labels = row["input_ids"], row["labels"]
        n_masked = labels.count(-100)
        assert labels[:n_masked] == [-100] * n_masked  # one masked prefix, then trained to the end
        assert labels[n_masked:] == ids[n_masked:]
        sep = " " if inp and outp and not inp[-1].isspace() and not outp[0].isspace() else ""
        assert bpe_tok.decode(ids[n_masked:]) == sep + outp + "</s>"
        assert bpe_tok.decode(ids[:n_masked]) == "<s>" + inp


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(text, text), min_size=1, max_size=4), limit=st.integers(2, 30))
def test_property_truncation_keeps_a_prefix(tmp_path_factory, bpe_tok, pairs, limit):
    tmp = tmp_path_factory.mktemp("prop")
    rows = [{"input": i, "output": o} for i, o in pairs]
    full = run(tmp, rows, bpe_tok, max_seq_length=10_000)
    try:
        cut = run(tmp, rows, bpe_tok, max_seq_length=limit)
    except DataError:
        assert all(r.count(-100) >= limit for r in full.train["labels"])
        return
    kept = [r for r in full.train if r["labels"][:limit].count(-100) < min(limit, len(r["labels"]))]
    assert len(cut.train) == len(kept)
    for a, b in zip(kept, cut.train, strict=False):
        assert b["input_ids"] == a["input_ids"][:limit] and b["labels"] == a["labels"][:limit]
    assert cut.stats["num_truncated"] == sum(len(r["input_ids"]) > limit for r in full.train)
