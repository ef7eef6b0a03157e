"""fms-hf-tuning's data handlers, by its names and arguments, working on whole columns.

The tokenizing handlers mask by character offsets (``masking.SpanEncoder``): trained tokens are the
response (or each assistant turn) plus EOS, exactly as on the flag path, which uses these same handlers.
"""

from __future__ import annotations

from tuning_core.data import formats
from tuning_core.data.handlers import DataHandler, HandlerContext
from tuning_core.data.readers import MISSING, Records
from tuning_core.errors import DataError


def _encoded(
    records: Records, context: HandlerContext, texts: formats.Texts, prefix_id=None, max_length: int | None = None
) -> Records:
    """Token columns from texts + trained spans; rows dropped by ``texts.keep`` keep their origin."""
    encoder = context.span_encoder()
    if max_length is not None and max_length < encoder.max_length:
        from tuning_core.data.masking import SpanEncoder

        encoder = SpanEncoder(context.tokenizer, int(max_length))
    encoded = encoder.encode(texts.texts, texts.spans, texts.add_special_tokens, texts.append_eos, prefix_id=prefix_id)
    base = records.select(texts.keep) if texts.keep is not None else records
    out = base.with_columns({"input_ids": encoded.input_ids, "labels": encoded.labels})
    out.trusted_tokens = True
    notes = context.notes
    notes["num_truncated"] = notes.get("num_truncated", 0) + encoded.num_truncated
    notes["num_split_at_border"] = notes.get("num_split_at_border", 0) + encoded.num_split
    if texts.notes.get("skipped_indices"):
        notes["skipped_where"] = [records.where(i) for i in texts.notes["skipped_indices"][:3]]
    for k, v in texts.notes.items():
        if isinstance(v, int):
            notes[k] = notes.get(k, 0) + v
        else:
            notes[k] = v
    return out


def tokenize_and_apply_input_masking(
    records: Records,
    context: HandlerContext,
    input_column_name: str,
    output_column_name: str,
    add_eos_token: bool = True,
):
    """input + output (+ EOS) tokenized; the input is masked."""
    texts = formats.input_output_texts(records, input_column_name, output_column_name)
    texts.append_eos = bool(add_eos_token)
    return _encoded(records, context, texts)


def tokenize_and_mask_completion(
    records: Records,
    context: HandlerContext,
    text_column_name: str,
    response_template: str | None = None,
    instruction_template: str | None = None,
    skip_missing_response_template: bool = False,
):
    """Pre-formatted text: train after the response template (each one, up to the next instruction template,
    when an instruction template is given), or on everything without a template."""
    texts = formats.string_column(records, text_column_name, "--dataset_text_field")
    out = formats.completion_texts(
        texts, response_template, records, skip_missing_response_template, instruction_template
    )
    return _encoded(records, context, out)


def apply_custom_jinja_template(
    records: Records, context: HandlerContext, formatted_text_column_name: str, template: str
):
    """Render ``template`` (``{{field}}``, ``{{element['field']}}``, ``{{eos_token}}``...) per record."""
    from tuning_core.data.templates import render_all

    return {formatted_text_column_name: render_all(template, records, special_tokens(context.tokenizer))}


def apply_tokenizer_chat_template(
    records: Records,
    context: HandlerContext,
    formatted_text_column_name: str,
    conversation_column_name: str | None = None,
    conversation_column: str | None = None,
):
    """The chat template's rendering of each conversation, as text (not tokenized, not masked)."""
    from tuning_core.data.chat import render_chats, resolve_chat_template

    template = resolve_chat_template(context.notes.get("chat_template"), context.tokenizer)
    texts, _, _ = render_chats(
        records, context.tokenizer, template, conversation_column_name or conversation_column or "messages", spans=False
    )
    return {formatted_text_column_name: texts}


def tokenize_and_apply_chat_template_with_masking(
    records: Records,
    context: HandlerContext,
    conversation_column: str = "messages",
    max_seq_length: int | None = None,
    formatted_text_column_name: str | None = None,
):
    """Chat data tokenized with the chat template; only assistant turns (with their end-of-turn) trained."""
    from tuning_core.data.chat import bos_prefix, render_chats, resolve_chat_template

    # formatted_text_column_name: fms-hf-tuning's own configs pass it to this handler, which never uses it.
    template = resolve_chat_template(context.notes.get("chat_template"), context.tokenizer)
    texts, spans, fallbacks = render_chats(records, context.tokenizer, template, conversation_column)
    # The template writes the special tokens (BOS, end-of-turn) itself; BOS is added only where the tokenizer
    # would add one and the template did not (fms-hf-tuning's behaviour, gap 7).
    out = formats.Texts(
        texts, spans, add_special_tokens=False, append_eos=False, notes={"num_turns_located_by_content": fallbacks}
    )
    return _encoded(records, context, out, prefix_id=bos_prefix(context.tokenizer, texts), max_length=max_seq_length)


def tokenize(
    records: Records, context: HandlerContext, text_column_name: str, truncation=True, max_length: int | None = None
):
    """Tokenize a text column into input_ids (with the tokenizer's special tokens); every token trained."""
    texts = formats.string_column(records, text_column_name)
    encodings = context.span_encoder().backend.encode_batch(texts, add_special_tokens=True)
    ids = [e.ids for e in encodings]
    if truncation and max_length:
        ids = [x[:max_length] for x in ids]
    return {"input_ids": ids}


def duplicate_columns(records: Records, context: HandlerContext, existing_column_name: str, new_column_name: str):
    if existing_column_name not in records.names:
        raise DataError(
            f"{context.where}: cannot duplicate column {existing_column_name!r}: the data has "
            f"{', '.join(records.names)}"
        )
    if new_column_name in records.names:
        raise DataError(f"{context.where}: cannot duplicate to {new_column_name!r}: that column exists already")
    return {new_column_name: records.column(existing_column_name)}


def skip_samples_with_large_columns(
    records: Records, context: HandlerContext, column_name: str, max_allowed_length: int
):
    """Keep records whose ``column_name`` has at most ``max_allowed_length`` characters (or tokens)."""
    if column_name not in records.names:
        raise DataError(f"{context.where}: column {column_name!r} is not in the data ({', '.join(records.names)})")
    values = records.column(column_name)
    keep = []
    for i, v in enumerate(values):
        if v is None or v is MISSING:
            raise DataError(f"{context.where}: {records.where(i)} has no value in column {column_name!r}")
        if len(v) <= max_allowed_length:
            keep.append(i)
    out = records.select(keep)
    out.trusted_tokens = getattr(records, "trusted_tokens", False)
    return out


def special_tokens(tokenizer) -> dict[str, str]:
    """bos_token, eos_token, ... as strings, for templates (fms-hf-tuning passes special_tokens_map)."""
    if tokenizer is None:
        return {}
    return {k: v for k, v in (getattr(tokenizer, "special_tokens_map", None) or {}).items() if isinstance(v, str)}


BUILTIN_HANDLERS = {
    "tokenize_and_apply_input_masking": DataHandler(
        tokenize_and_apply_input_masking, "columns", "input + output, the input masked"
    ),
    "apply_custom_jinja_template": DataHandler(
        apply_custom_jinja_template, "columns", "format each record with a Jinja template into a text column"
    ),
    "apply_tokenizer_chat_template": DataHandler(
        apply_tokenizer_chat_template,
        "columns",
        "render conversations with the chat template into a text column",
        extra_arguments=("conversation_column",),
    ),
    "tokenize_and_apply_chat_template_with_masking": DataHandler(
        tokenize_and_apply_chat_template_with_masking,
        "columns",
        "chat template + tokenize; only assistant turns trained",
    ),
    "tokenize_and_mask_completion": DataHandler(
        tokenize_and_mask_completion, "columns", "tokenize a text column; train after the response template"
    ),
    "tokenize": DataHandler(tokenize, "columns", "tokenize a text column; every token trained"),
    "duplicate_columns": DataHandler(duplicate_columns, "columns", "copy a column under a new name"),
    "skip_samples_with_large_columns": DataHandler(
        skip_samples_with_large_columns, "columns", "drop records whose column is longer than a limit"
    ),
    "remove_columns": DataHandler(kind="remove", description="drop columns"),
    "select_columns": DataHandler(kind="select", description="keep only these columns"),
    "rename_columns": DataHandler(kind="rename", description="rename columns"),
}
