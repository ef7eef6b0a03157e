"""Where fms-hf-tuning's own test data used to be rejected or treated differently (issue 13, "gaps")."""

import pytest

from tuning_core.data import prepare_datasets
from tuning_core.errors import ConfigError

from .helpers import MASK, config, label_tokens, tokens, write_jsonl

NO_BOS_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}### Response: {{ m['content'] }}"
    "{{ eos_token }}\n{% else %}### Input: {{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Response:{% endif %}"
)
CHAT = {"messages": [{"role": "user", "content": "bank was quick"}, {"role": "assistant", "content": "no"}]}


def trained(tok, row):
    return tok.decode([t for t, lab in zip(row["input_ids"], row["labels"], strict=False) if lab != -100])


def test_formatter_element_syntax_equals_the_plain_syntax(tmp_path, bpe_tok, twitter_data):
    peer = "### Text: {{element['Tweet text']}}\n\n### Label: {{ element[\"text_label\"] }}"
    ours = "### Text: {{Tweet text}}\n\n### Label: {{text_label}}"
    a = prepare_datasets(
        config(training_data_path=str(twitter_data), data_formatter_template=peer, response_template="\n### Label:"),
        bpe_tok,
    )
    b = prepare_datasets(
        config(training_data_path=str(twitter_data), data_formatter_template=ours, response_template="\n### Label:"),
        bpe_tok,
    )
    assert a.train.to_dict() == b.train.to_dict()


def test_formatter_special_tokens(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "d.jsonl", [{"q": "hi", "a": "yes"}])
    out = prepare_datasets(
        config(
            training_data_path=str(data),
            response_template=" A:",
            data_formatter_template="{{bos_token}}Q: {{q}} A: {{a}}{{eos_token}}",
        ),
        bpe_tok,
    )
    ids = tokens(bpe_tok, out.train[0]["input_ids"])
    assert ids[0] == "<s>" and ids[1] != "<s>" and ids[-1] == "</s>" and ids.count("</s>") == 1
    assert trained(bpe_tok, out.train[0]) == " yes</s>"


def test_chat_template_indexing_the_whole_row(tmp_path, bpe_tok):
    row_template = NO_BOS_TEMPLATE.replace("for m in messages %", "for m in messages['messages'] %")
    data = write_jsonl(tmp_path / "chat.jsonl", [CHAT])
    a = prepare_datasets(config(training_data_path=str(data), chat_template=row_template), bpe_tok)
    b = prepare_datasets(config(training_data_path=str(data), chat_template=NO_BOS_TEMPLATE), bpe_tok)
    assert a.train.to_dict() == b.train.to_dict()
    assert trained(bpe_tok, a.train[0]) == " no</s>\n"


def test_instruction_and_response_templates_accepted_with_chat_data(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "chat.jsonl", [CHAT])
    a = prepare_datasets(
        config(
            training_data_path=str(data),
            chat_template=NO_BOS_TEMPLATE,
            instruction_template="### Input:",
            response_template="### Response:",
        ),
        bpe_tok,
    )
    b = prepare_datasets(config(training_data_path=str(data), chat_template=NO_BOS_TEMPLATE), bpe_tok)
    assert a.train.to_dict() == b.train.to_dict() and a.stats["format"] == "chat"


def test_instruction_template_masks_each_turn_of_multi_turn_text(tmp_path, bpe_tok):
    text = "<|user|> hi <|bot|> hello <|user|> how <|bot|> fine"
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": text}])
    out = prepare_datasets(
        config(
            training_data_path=str(data),
            dataset_text_field="text",
            instruction_template="<|user|>",
            response_template="<|bot|>",
        ),
        bpe_tok,
    )
    labels = label_tokens(bpe_tok, out.train[0]["labels"])
    pieces = "".join(t if t != MASK else "|" for t in labels).replace("Ġ", " ")
    assert [p for p in pieces.split("|") if p] == [" hello ", " fine</s>"]


def test_dataset_conversation_field(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "chat.jsonl", [{"conversation": CHAT["messages"]}])
    out = prepare_datasets(
        config(training_data_path=str(data), chat_template=NO_BOS_TEMPLATE, dataset_conversation_field="conversation"),
        bpe_tok,
    )
    ref = prepare_datasets(
        config(training_data_path=str(write_jsonl(tmp_path / "m.jsonl", [CHAT])), chat_template=NO_BOS_TEMPLATE),
        bpe_tok,
    )
    assert out.train.to_dict() == ref.train.to_dict()
    with pytest.raises(Exception, match="'talk' \\(named by --dataset_conversation_field\\) is not in the data"):
        prepare_datasets(config(training_data_path=str(data), dataset_conversation_field="talk"), bpe_tok)


@pytest.mark.parametrize(
    "flags,flag",
    [
        ({"dataset_text_field": "text"}, "--dataset_text_field"),
        ({"dataset_text_field": "text", "response_template": "B:"}, "--dataset_text_field"),
    ],
)
def test_pretokenized_data_with_text_flags_is_an_error(tmp_path, bpe_tok, flags, flag):
    data = write_jsonl(tmp_path / "p.jsonl", [{"input_ids": [1, 5, 6], "labels": [-100, 5, 6], "text": "A: x B: y"}])
    with pytest.raises(ConfigError, match=f"already tokenized.*so {flag} does not apply"):
        prepare_datasets(config(training_data_path=str(data), **flags), bpe_tok)


def test_chat_bos_follows_the_tokenizer(tmp_path, tok):
    """The tiny tokenizers add BOS when they encode: a template that writes none gets one (masked), a template
    that writes one gets no second."""
    data = write_jsonl(tmp_path / "chat.jsonl", [CHAT])
    out = prepare_datasets(config(training_data_path=str(data), chat_template=NO_BOS_TEMPLATE), tok)
    ids, labels = out.train[0]["input_ids"], out.train[0]["labels"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1 and labels[0] == -100
    with_bos = prepare_datasets(
        config(training_data_path=str(data), chat_template="{{ bos_token }}" + NO_BOS_TEMPLATE), tok
    )
    ids, labels = with_bos.train[0]["input_ids"], with_bos.train[0]["labels"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1 and labels[0] == -100
