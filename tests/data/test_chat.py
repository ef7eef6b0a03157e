"""Chat data ('messages'): every assistant turn trained (with its end-of-turn marker), everything else masked."""

import copy

import pytest

from tuning_core.data import prepare_datasets
from tuning_core.errors import ConfigError, DataError

from .helpers import MASK, config, label_tokens, tokens, write_jsonl

# The tiny tokenizers have no chat template. This one writes BOS itself, ends assistant turns with EOS, and its
# generation prompt ends in a space (so the first answer token has to be cut from it: the split path).
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}### Response: {{ m['content'] }}{{ eos_token }}\n"
    "{% else %}### Input: {{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Response: {% endif %}"
)

CONVERSATION = {
    "messages": [
        {"role": "system", "content": "Label it."},
        {"role": "user", "content": "bank was quick"},
        {"role": "assistant", "content": "no complaint"},
        {"role": "user", "content": "Ünïcødé ✓"},
        {"role": "assistant", "content": "日本語"},
    ]
}


def run(tmp_path, rows, tokenizer, **flags):
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    return prepare_datasets(config(training_data_path=str(path), **flags), tokenizer)


def test_multi_turn_exact_labels_bpe(tmp_path, bpe_tok):
    out = run(tmp_path, [CONVERSATION], bpe_tok, chat_template=TEMPLATE)
    row = out.train[0]
    got = label_tokens(bpe_tok, row["labels"])
    ids = tokens(bpe_tok, row["input_ids"])
    first, second = ["n", "o", "Ġcomplaint", "</s>", "Ċ"], ["æ", "Ĺ", "¥", "æ", "ľ", "¬", "è", "ª", "ŀ", "</s>", "Ċ"]
    assert got == [MASK] * 35 + first + [MASK] * 35 + second
    assert ids[:1] == ["<s>"] and ids.count("<s>") == 1  # the template's BOS only, none added on top
    assert ids[33:35] == [":", "Ġ"] and ids[35:40] == first  # the generation prompt's space stays masked
    trained = [i for i, lab in zip(row["input_ids"], row["labels"], strict=False) if lab != -100]
    assert bpe_tok.decode(trained) == "no complaint</s>\n日本語</s>\n"
    assert out.stats["format"] == "chat" and out.stats["num_turns_located_by_content"] == 0


def test_multi_turn_exact_labels_sentencepiece(tmp_path, sp_tok):
    out = run(tmp_path, [CONVERSATION], sp_tok, chat_template=TEMPLATE)
    row = out.train[0]
    assert tokens(sp_tok, row["input_ids"]) == [
        "<s>",
        "###",
        "▁Input:",
        "▁La",
        "bel",
        "▁",
        "it",
        "<unk>",
        "\n",
        "###",
        "▁Input:",
        "▁bank",
        "▁was",
        "▁quick",
        "\n",
        "###",
        "▁Response:",
        "▁",
        "n",
        "o",
        "▁complaint",
        "</s>",
        "\n",
        "###",
        "▁Input:",
        "▁Ünïcødé",
        "▁✓",
        "\n",
        "###",
        "▁Response:",
        "▁",
        "日",
        "本語",
        "</s>",
        "\n",
    ]
    assert label_tokens(sp_tok, row["labels"]) == (
        [MASK] * 18 + ["n", "o", "▁complaint", "</s>", "\n"] + [MASK] * 8 + ["日", "本語", "</s>", "\n"]
    )


def test_tokenizer_chat_template_is_used_by_default(tmp_path, bpe_tok):
    tok = copy.deepcopy(bpe_tok)
    tok.chat_template = TEMPLATE
    a = run(tmp_path, [CONVERSATION], tok)
    b = run(tmp_path, [CONVERSATION], bpe_tok, chat_template=TEMPLATE)
    assert a.train[0] == b.train[0]


def test_chat_template_from_a_file(tmp_path, bpe_tok):
    path = tmp_path / "template.jinja"
    path.write_text(TEMPLATE)
    a = run(tmp_path, [CONVERSATION], bpe_tok, chat_template=str(path))
    b = run(tmp_path, [CONVERSATION], bpe_tok, chat_template=TEMPLATE)
    assert a.train[0] == b.train[0]


def test_template_that_rewrites_history_falls_back_to_the_content(tmp_path, bpe_tok):
    # This template numbers turns from the end, so a prefix of the conversation renders differently.
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ loop.revindex }}] {{ m['content'] }}"
        "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    )
    out = run(tmp_path, [CONVERSATION], bpe_tok, chat_template=template)
    row = out.train[0]
    labels = label_tokens(bpe_tok, row["labels"])
    # The content is trained (and the EOS right after it); the turn numbers around it are not.
    assert labels == [MASK] * 18 + ["n", "o", "Ġcomplaint", "</s>"] + [MASK] * 23 + [
        "æ",
        "Ĺ",
        "¥",
        "æ",
        "ľ",
        "¬",
        "è",
        "ª",
        "ŀ",
        "</s>",
    ]
    assert out.stats["num_turns_located_by_content"] == 2


def test_no_chat_template_is_a_config_error(tmp_path, bpe_tok):
    with pytest.raises(ConfigError, match="tokenizer has no chat template; pass --chat_template") as e:
        run(tmp_path, [CONVERSATION], bpe_tok)
    assert e.value.exit_code == 2


def test_chat_template_that_is_neither_file_nor_template(tmp_path, bpe_tok):
    with pytest.raises(ConfigError, match="--chat_template 'nofile.jinja' is neither an existing file"):
        run(tmp_path, [CONVERSATION], bpe_tok, chat_template="nofile.jinja")


def test_conversation_without_assistant_is_dropped_and_all_without_is_an_error(tmp_path, bpe_tok, caplog):
    user_only = {"messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level("WARNING", logger="tuning_core.data"):
        out = run(tmp_path, [user_only, CONVERSATION], bpe_tok, chat_template=TEMPLATE)
    assert len(out.train) == 1 and out.stats["num_dropped_no_labels"] == 1
    assert "example 0 (" in caplog.text
    with pytest.raises(DataError, match="no example is left to train on"):
        run(tmp_path, [user_only], bpe_tok, chat_template=TEMPLATE)


@pytest.mark.parametrize(
    "messages,message",
    [
        ("hello", r"example 1 \(.*line 2\): 'messages' must be a non-empty list"),
        ([], r"example 1 .*'messages' must be a non-empty list"),
        ([{"role": "user"}], r"example 1 .*messages\[0\] needs the fields 'role' and 'content'"),
        ([{"role": "user", "content": 3}], r"example 1 .*messages\[0\].content must be a string"),
    ],
)
def test_malformed_messages(tmp_path, bpe_tok, messages, message):
    with pytest.raises(DataError, match=message):
        run(tmp_path, [CONVERSATION, {"messages": messages}], bpe_tok, chat_template=TEMPLATE)


def test_missing_messages_field(tmp_path, bpe_tok):
    with pytest.raises(DataError, match=r"example 1 \(.*line 2\) has no field 'messages'"):
        run(tmp_path, [CONVERSATION, {"text": "x"}], bpe_tok, chat_template=TEMPLATE)


def test_template_error_names_the_example(tmp_path, bpe_tok):
    template = "{% if messages[0]['role'] == 'user' %}{{ raise_exception('must start with system') }}{% endif %}x"
    with pytest.raises(DataError, match=r"example 0 .*the chat template failed: must start with system"):
        run(tmp_path, [{"messages": [{"role": "user", "content": "a"}]}], bpe_tok, chat_template=template)
