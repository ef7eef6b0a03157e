"""Chat data: render each conversation with the chat template and find the characters of every assistant turn.

An assistant turn's span is found by rendering the conversation up to the turn with the generation prompt
(the text the model sees before it answers) and up to the end of the turn: what lies between is what the
model must produce, including the template's end-of-turn marker, so it learns to stop. Templates whose
rendering of a prefix is not a prefix of the whole (some rewrite earlier turns) fall back to the turn's
content located in the rendered text.
"""

from __future__ import annotations

import os

from tuning_core.errors import ConfigError, DataError
from tuning_core.data.readers import MISSING, Records

ROLES_TRAINED = ("assistant",)


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
        raise ConfigError("the data has 'messages' but the tokenizer has no chat template; pass --chat_template "
                          "(a Jinja template or a file holding one)")
    if isinstance(template, dict):  # several named templates: use the default one
        template = template.get("default") or next(iter(template.values()))
    return template


def render_chats(records: Records, tokenizer, template: str) -> tuple[list[str], list[list[tuple[int, int]]], int]:
    """Rendered text and assistant spans per conversation, plus how many turns needed the content fallback."""
    from jinja2 import TemplateError

    conversations = records.column("messages")
    texts, spans, fallbacks = [], [], 0

    def render(messages, generation_prompt):
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    for index, messages in enumerate(conversations):
        _check_messages(messages, index, records)
        try:
            full = render(messages, False)
            example_spans = []
            search_from = 0
            for i, message in enumerate(messages):
                if message["role"] not in ROLES_TRAINED:
                    continue
                before = render(messages[:i], True) if i else ""
                upto = render(messages[: i + 1], False)
                if full.startswith(upto) and upto.startswith(before) and len(upto) > len(before) \
                        and len(before) >= search_from:
                    span = (len(before), len(upto))
                else:
                    content = message["content"]
                    pos = full.find(content, search_from)
                    if pos < 0 or not content:
                        raise DataError(f"{records.where(index)}: cannot find assistant message {i} in the text "
                                        f"the chat template renders")
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
        spans.append(example_spans)
    return texts, spans, fallbacks


def _check_messages(messages, index: int, records: Records) -> None:
    if messages is MISSING or messages is None:
        raise DataError(f"{records.where(index)} has no field 'messages'")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{records.where(index)}: 'messages' must be a non-empty list of "
                        f"{{'role': ..., 'content': ...}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{records.where(index)}: messages[{i}] needs the fields 'role' and 'content'")
        if not isinstance(m["content"], str):
            raise DataError(f"{records.where(index)}: messages[{i}].content must be a string")
