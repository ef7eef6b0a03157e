"""--data_formatter_template: {{field}} substitution (names with spaces, dots, dashes), sandboxed Jinja."""

import json

import pytest

from tuning_core.data import prepare_datasets
from tuning_core.data.readers import Records, _Source
from tuning_core.data.templates import render_all, template_fields
from tuning_core.errors import ConfigError, DataError

from .helpers import MASK, config, label_tokens, tokens, write_jsonl

TEMPLATE = "### Text: {{Tweet text}} \\n\\n### Label: {{text_label}}"  # as typed in a shell


def records(rows):
    return Records(
        [
            _Source(
                "data.jsonl",
                rows=rows,
                lines=list(range(1, len(rows) + 1)),
                names=list(dict.fromkeys(k for r in rows for k in r)),
            )
        ]
    )


def test_field_names_with_spaces_dots_dashes():
    rows = [{"Tweet text": "a%s", "meta.id": 3, "the-label": "b", "x_1": "c"}]
    assert template_fields("{{Tweet text}}|{{ meta.id }}|{{the-label}}|{{x_1}}") == [
        "Tweet text",
        "meta.id",
        "the-label",
        "x_1",
    ]
    assert render_all("{{Tweet text}}|{{ meta.id }}|{{the-label}}|{{x_1}} 100%", records(rows)) == ["a%s|3|b|c 100%"]


def test_matches_the_preformatted_text_token_by_token(tmp_path, tok, twitter_data):
    rows = [json.loads(line) for line in twitter_data.read_text().splitlines()]
    out = prepare_datasets(
        config(
            training_data_path=str(twitter_data), data_formatter_template=TEMPLATE, response_template="\\n### Label:"
        ),
        tok,
    )
    assert out.stats["format"] == "formatter_template" and len(out.train) == len(rows)
    # The template yields "### Text: <tweet> \n\n### Label: <label>": the same as the bundled "output" field
    # with one extra space, so the same examples through --dataset_text_field must agree after that edit.
    edited = write_jsonl(
        tmp_path / "edited.jsonl",
        [{"output": f"### Text: {r['Tweet text']} \n\n### Label: {r['text_label']}"} for r in rows],
    )
    ref = prepare_datasets(
        config(training_data_path=str(edited), dataset_text_field="output", response_template="\\n### Label:"), tok
    )
    assert out.train["input_ids"] == ref.train["input_ids"]
    assert out.train["labels"] == ref.train["labels"]
    first = label_tokens(tok, out.train[0]["labels"])
    assert [t for t in first if t != MASK] == tokens(tok, out.train[0]["input_ids"])[-2:]
    assert tok.decode([x for x in out.train[0]["labels"] if x != -100]).strip() == rows[0]["text_label"] + "</s>"


def test_missing_field_names_field_and_example(tmp_path, bpe_tok):
    path = write_jsonl(tmp_path / "d.jsonl", [{"Tweet text": "a", "text_label": "b"}, {"Tweet text": "a"}])
    with pytest.raises(
        DataError,
        match=r"example 1 \(.*d.jsonl line 2\) has no field 'text_label', which "
        r"--data_formatter_template needs",
    ) as e:
        prepare_datasets(
            config(training_data_path=str(path), data_formatter_template=TEMPLATE, response_template="\\n### Label:"),
            bpe_tok,
        )
    assert e.value.exit_code == 1


def test_field_absent_from_all_data(tmp_path, bpe_tok):
    path = write_jsonl(tmp_path / "d.jsonl", [{"tweet": "a", "text_label": "b"}])
    with pytest.raises(DataError, match=r"field 'Tweet text' used by --data_formatter_template is not in the data"):
        prepare_datasets(
            config(training_data_path=str(path), data_formatter_template=TEMPLATE, response_template="\\n### Label:"),
            bpe_tok,
        )


def test_null_value_is_an_error():
    with pytest.raises(DataError, match=r"example 0 .*has a null 'x'"):
        render_all("{{x}}", records([{"x": None}]))


def test_jinja_syntax_runs_sandboxed_and_strict():
    rows = [{"Tweet text": "hi", "n": 2}]
    assert render_all("{{ n * 2 }}: {{Tweet text}}{% if n > 1 %}!{% endif %}", records(rows)) == ["4: hi!"]
    with pytest.raises(DataError, match=r"example 0 .*--data_formatter_template failed"):
        render_all("{{ ''.__class__.__mro__ }}{{n}}", records(rows))  # sandbox refuses attribute access
    with pytest.raises(DataError, match=r"example 0 .*'missing' is undefined"):
        render_all("{{ missing | upper }}{{n}}", records(rows))


def test_template_problems_are_config_errors():
    with pytest.raises(ConfigError, match="uses no fields"):
        render_all("no fields", records([{"x": "a"}]))
    with pytest.raises(ConfigError, match="not a valid template"):
        render_all("{{x}} {% if %}", records([{"x": "a"}]))


@pytest.mark.parametrize(
    "flags,message",
    [
        (dict(data_formatter_template="{{x}}"), "--data_formatter_template needs --response_template"),
        (dict(data_formatter_template="{{x}}", dataset_text_field="t", response_template="r"), "give only one"),
        (
            dict(data_formatter_template="{{x}}", response_template="r", chat_template="{{x}}"),
            "cannot be combined with --data_formatter_template",
        ),
    ],
)
def test_conflicting_flags(tmp_path, bpe_tok, flags, message):
    path = write_jsonl(tmp_path / "d.jsonl", [{"x": "a"}])
    with pytest.raises(ConfigError, match=message) as e:
        prepare_datasets(config(training_data_path=str(path), **flags), bpe_tok)
    assert e.value.exit_code == 2
