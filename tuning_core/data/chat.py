"""Chat data: render each conversation with the chat template and find the characters of every assistant turn.

An assistant turn's span is found by rendering the conversation up to the turn with the generation prompt
(the text the model sees before it answers) and up to the end of the turn: what lies between is what the
model must produce, including the template's end-of-turn marker, so it learns to stop. Templates whose
rendering of a prefix is not a prefix of the whole (some rewrite earlier turns) fall back to the turn's
content located in the rendered text.
"""

from __future__ import annotations

import os
import re

from tuning_core.data.readers import MISSING, Records
from tuning_core.errors import ConfigError, DataError

ROLES_TRAINED = ("assistant",)
# fms-hf-tuning's tests write templates that index the whole row: {% for m in messages['messages'] %}.
_ROW_INDEX_RE = re.compile(r"""messages\s*\[\s*['"]([^'"]+)['"]\s*\]""")


def row_column(template: str) -> str | None:
    """The column a whole-row template reads the conversation from (``messages['messages']``), or None."""
    m = _ROW_INDEX_RE.search(template)
    return m.group(1) if m else None


def bos_prefix(tokenizer, texts: list[str]):
    """(BOS id, per-text flags) when the tokenizer adds BOS to what it encodes and a rendered chat does not
    start with it; None otherwise. Follows the tokenizer's own behaviour, as fms-hf-tuning does."""
    bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
    if not bos or bos_id is None:
        return None
    from tuning_core.data.masking import backend_of

    ids = backend_of(tokenizer).encode("a", add_special_tokens=True).ids
    if not ids or ids[0] != bos_id:
        return None
    flags = [not t.startswith(bos) for t in texts]
    return (bos_id, flags) if any(flags) else None


def resolve_chat_template(value: str | None, tokenizer) -> str:
    if value:
        if os.path.isfile(os.path.expanduser(value)):
            with open(os.path.expanduser(value), encoding="utf-8") as f:
                return f.read()
        if "{" not in value:
            raise ConfigError(f"--chat_template {value!r} is neither an existing file nor a Jinja template")
        return value
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ConfigError(
            "the data has 'messages' but the tokenizer has no chat template; pass --chat_template "
            "(a Jinja template or a file holding one)"
        )
    if isinstance(template, dict):  # several named templates: use the default one
        template = template.get("default") or next(iter(template.values()))
    return template


def render_chats(
    records: Records, tokenizer, template: str, column: str = "messages", spans: bool = True
) -> tuple[list[str], list[list[tuple[int, int]]], int]:
    """Rendered text and assistant spans per conversation, plus how many turns needed the content fallback."""
    from jinja2 import TemplateError

    whole_row = row_column(template)
    if whole_row:
        column = whole_row
    if column not in records.names:
        raise DataError(
            f"{records.where(0)} has no field {column!r} (the conversation); it has fields "
            f"{', '.join(repr(n) for n in records.names)}"
        )
    conversations = records.column(column)
    texts, all_spans, fallbacks = [], [], 0

    if whole_row:
        from transformers.utils.chat_template_utils import _compile_jinja_template

        compiled = _compile_jinja_template(template)
        specials = {
            k: v for k, v in (getattr(tokenizer, "special_tokens_map", None) or {}).items() if isinstance(v, str)
        }
        rows = records
        names = list(rows.names)
        columns = {n: rows.column(n) for n in names if n != column}

        def render_row(index):
            row = {n: c[index] for n, c in columns.items() if c[index] is not MISSING}

            def render(messages, generation_prompt):
                return compiled.render(
                    messages={**row, column: messages}, add_generation_prompt=generation_prompt, **specials
                )

            return render
    else:

        def render_row(index):
            def render(messages, generation_prompt):
                return tokenizer.apply_chat_template(
                    messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
                )

            return render

    for index, messages in enumerate(conversations):
        _check_messages(messages, index, records, column)
        render = render_row(index)
        try:
            full = render(messages, False)
            example_spans = []
            search_from = 0
            for i, message in enumerate(messages if spans else ()):
                if message["role"] not in ROLES_TRAINED:
                    continue
                before = render(messages[:i], True) if i else ""
                upto = render(messages[: i + 1], False)
                if (
                    full.startswith(upto)
                    and upto.startswith(before)
                    and len(upto) > len(before)
                    and len(before) >= search_from
                ):
                    span = (len(before), len(upto))
                else:
                    content = message["content"]
                    pos = full.find(content, search_from)
                    if pos < 0 or not content:
                        raise DataError(
                            f"{records.where(index)}: cannot find assistant message {i} in the text "
                            f"the chat template renders"
                        )
                    end = pos + len(content)
                    eos = tokenizer.eos_token
                    if eos and full.startswith(eos, end):  # still teach the model to stop
                        end += len(eos)
                    span = (pos, end)
                    fallbacks += 1
                example_spans.append(span)
                search_from = span[1]
        except TemplateError as e:
            raise DataError(f"{records.where(index)}: the chat template failed: {e}") from None
        texts.append(full)
        all_spans.append(example_spans)
    return texts, all_spans, fallbacks


def _check_messages(messages, index: int, records: Records, column: str = "messages") -> None:
    if messages is MISSING or messages is None:
        raise DataError(f"{records.where(index)} has no field {column!r}")
    if not isinstance(messages, list) or not messages:
        raise DataError(
            f"{records.where(index)}: {column!r} must be a non-empty list of {{'role': ..., 'content': ...}} objects"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{records.where(index)}: messages[{i}] needs the fields 'role' and 'content'")
        if not isinstance(m["content"], str):
            raise DataError(f"{records.where(index)}: messages[{i}].content must be a string")
