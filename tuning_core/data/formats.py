"""Which of fms-hf-tuning's data formats a run uses, and each format's texts and trained character spans.

The format follows from the flags first and the data's fields second, as in fms-hf-tuning:
--data_formatter_template -> "formatter_template"; --dataset_text_field -> "text_field";
else a 'input_ids' field -> "pretokenized", 'messages' -> "chat", 'input' and 'output' -> "input_output".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuning_core.data.readers import MISSING, Records
from tuning_core.errors import ConfigError, DataError

FORMATS = ("text_field", "formatter_template", "input_output", "pretokenized", "chat")


@dataclass
class Settings:
    """The data flags that shape processing (templates already unescaped)."""

    dataset_text_field: str | None = None
    response_template: str | None = None
    data_formatter_template: str | None = None
    chat_template: str | None = None
    max_seq_length: int = 4096
    skip_missing_response_template: bool = False
    instruction_template: str | None = None
    dataset_conversation_field: str | None = None
    packing: bool = False
    # The model's embedding rows, when its config.json says: pretokenized ids may use rows past the tokenizer
    # (padded vocabularies, data tokenized elsewhere), up to this.
    model_vocab_size: int | None = None

    @property
    def conversation_field(self) -> str:
        return self.dataset_conversation_field or "messages"


@dataclass
class Texts:
    """Texts to tokenize and, per text, the character spans to train on."""

    texts: list[str]
    spans: list[list[tuple[int, int]]]
    keep: list[int] | None = None  # record index of each text when some records were skipped
    add_special_tokens: bool = True
    append_eos: bool = True
    notes: dict = field(default_factory=dict)


def check_flags(s: Settings) -> None:
    """Flag combinations that can never work, whatever the data."""
    if s.data_formatter_template and s.dataset_text_field:
        raise ConfigError("--data_formatter_template and --dataset_text_field are alternatives: give only one")
    if s.data_formatter_template and not s.response_template:
        raise ConfigError(
            "--data_formatter_template needs --response_template, the text after which the "
            "response starts (e.g. --response_template '\\n### Label:')"
        )
    if s.response_template is not None and not s.response_template:
        raise ConfigError("--response_template is empty")
    if s.instruction_template is not None and not s.instruction_template:
        raise ConfigError("--instruction_template is empty")
    if s.instruction_template and not s.response_template:
        raise ConfigError(
            "--instruction_template needs --response_template: training covers the text from each "
            "response template to the next instruction template"
        )
    if s.response_template and not (s.dataset_text_field or s.data_formatter_template or s.instruction_template):
        raise ConfigError(
            "--response_template needs --dataset_text_field (pre-formatted text) or "
            "--data_formatter_template (format each record with a template)"
        )
    if s.chat_template and (s.dataset_text_field or s.data_formatter_template):
        flag = "--dataset_text_field" if s.dataset_text_field else "--data_formatter_template"
        raise ConfigError(f"--chat_template is for data with 'messages'; it cannot be combined with {flag}")
    if s.packing and s.response_template:
        raise ConfigError(
            "--packing trains every token (extended pretraining), so --response_template does not "
            "apply: drop one of them"
        )
    if s.max_seq_length is not None and s.max_seq_length < 1:
        raise ConfigError(f"--max_seq_length must be at least 1, not {s.max_seq_length}")


def detect_format(s: Settings, records: Records) -> str:
    check_flags(s)
    names = set(records.names)
    if "input_ids" in names:
        # Never re-tokenize a text field and silently drop the given input_ids/labels.
        for flag, value in (
            ("--data_formatter_template", s.data_formatter_template),
            ("--dataset_text_field", s.dataset_text_field),
            ("--response_template", s.response_template),
            ("--instruction_template", s.instruction_template),
            ("--chat_template", s.chat_template),
        ):
            if value:
                raise ConfigError(
                    f"the data is already tokenized (it has 'input_ids'), so {flag} does not apply; "
                    f"drop {flag}"
                    + (
                        " and --response_template"
                        if flag in ("--data_formatter_template", "--dataset_text_field")
                        else ""
                    )
                )
        return "pretokenized"
    if s.data_formatter_template or s.dataset_text_field:
        return "formatter_template" if s.data_formatter_template else "text_field"
    if s.conversation_field in names:
        # --instruction_template/--response_template are accepted with chat data, as fms-hf-tuning accepts them;
        # the assistant turns the chat template renders decide what is trained.
        return "chat"
    if s.dataset_conversation_field:
        raise DataError(
            f"field {s.dataset_conversation_field!r} (named by --dataset_conversation_field) is not in "
            f"the data: {records.where(0)} has fields {_names(records)}"
        )
    if s.instruction_template:
        raise ConfigError(
            f"--instruction_template and --response_template need chat data (a 'messages' field) or "
            f"--dataset_text_field; the data has: {_names(records)}"
        )
    if s.chat_template:
        raise ConfigError(f"--chat_template needs data with a 'messages' field; the data has: {_names(records)}")
    if "input" in names or "output" in names:
        return "input_output"
    raise DataError(
        f"cannot tell the data format from the fields ({_names(records)}): give --dataset_text_field "
        f"or --data_formatter_template with --response_template, or use records with 'input' and "
        f"'output', 'messages', or 'input_ids'"
    )


def _names(records: Records) -> str:
    return ", ".join(repr(n) for n in records.names) or "none"


def string_column(records: Records, name: str, flag: str | None = None) -> list[str]:
    """Field ``name`` of every record as text; a missing or null value names the record."""
    if name not in records.names:
        how = f" (named by {flag})" if flag else ""
        raise DataError(f"field {name!r}{how} is not in the data: {records.where(0)} has fields {_names(records)}")
    values = records.column(name)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            if v is MISSING:
                raise DataError(f"{records.where(i)} has no field {name!r}")
            if v is None:
                raise DataError(f"{records.where(i)}: field {name!r} is null")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[i] = str(v)
            else:
                raise DataError(f"{records.where(i)}: field {name!r} must be text, not {type(v).__name__}")
    return values


def completion_texts(
    texts: list[str],
    template: str | None,
    records: Records,
    skip_missing: bool,
    instruction_template: str | None = None,
) -> Texts:
    """Pre-formatted sequences: train after the last occurrence of the response template (as TRL's completion
    collator does), or on everything when there is no template. With an instruction template (multi-turn text)
    train from each response template to the next instruction template."""
    if template is None:
        return Texts(texts, [[(0, len(t))] for t in texts])
    spans, keep, missing = [], [], []
    for i, text in enumerate(texts):
        pos = text.rfind(template)
        if pos < 0:
            missing.append(i)
            continue
        spans.append(
            _turn_spans(text, template, instruction_template)
            if instruction_template
            else [(pos + len(template), len(text))]
        )
        keep.append(i)
    if missing:
        if not skip_missing:
            where = ", ".join(records.where(i) for i in missing[:5])
            raise DataError(
                f"the response template {template!r} does not occur in {len(missing)} of {len(texts)} "
                f"examples, e.g. {where}. Fix the data or the template (a literal \\n in the flag "
                f"is a newline), or pass --skip_missing_response_template to drop those examples"
            )
        texts = [texts[i] for i in keep]
    return Texts(
        texts,
        spans,
        keep=keep if missing else None,
        notes={"num_skipped_no_template": len(missing), "skipped_indices": missing[:20]},
    )


def _turn_spans(text: str, response: str, instruction: str) -> list[tuple[int, int]]:
    spans, pos = [], text.find(response)
    while pos >= 0:
        start = pos + len(response)
        end = text.find(instruction, start)
        end = len(text) if end < 0 else end
        if end > start:
            spans.append((start, end))
        pos = text.find(response, end)
    return spans


def input_output_texts(records: Records, input_name: str = "input", output_name: str = "output") -> Texts:
    """input + output (+ EOS), the input masked; a space joins them only when neither side has whitespace there.

    The joining space belongs to the output, so " USA" stays one token as it would in the running text."""
    inputs = string_column(records, input_name)
    outputs = string_column(records, output_name)
    texts, spans = [], []
    for inp, out in zip(inputs, outputs, strict=False):
        sep = " " if inp and out and not inp[-1].isspace() and not out[0].isspace() else ""
        text = inp + sep + out
        texts.append(text)
        spans.append([(len(inp), len(text))])
    return Texts(texts, spans)


def pretokenized(
    records: Records, max_length: int, vocab_size: int | None = None
) -> tuple[list[list[int]], list[list[int]], int]:
    """input_ids (and labels, else train on every token), truncated; checked to be lists of ints inside the
    vocabulary (an id outside it would be an IndexError in the middle of training)."""
    ids_col = records.column("input_ids")
    has_labels = "labels" in records.names
    labels_col = records.column("labels") if has_labels else None
    if getattr(records, "trusted_tokens", False) and has_labels:  # made (and truncated) by our own encoder
        return ids_col, labels_col, 0
    all_ids, all_labels, truncated = [], [], 0
    for i, ids in enumerate(ids_col):
        if not isinstance(ids, list) or not ids or not all(type(t) is int for t in ids):
            raise DataError(f"{records.where(i)}: 'input_ids' must be a non-empty list of integers")
        if has_labels:
            labels = labels_col[i]
            if not isinstance(labels, list) or not all(type(t) is int for t in labels):
                raise DataError(f"{records.where(i)}: 'labels' must be a list of integers (-100 = not trained)")
            if len(labels) != len(ids):
                raise DataError(
                    f"{records.where(i)}: 'labels' has {len(labels)} entries but 'input_ids' has {len(ids)}"
                )
        else:
            labels = list(ids)
        if vocab_size is not None:
            _check_in_vocab(records.where(i), "input_ids", ids, vocab_size)
            _check_in_vocab(records.where(i), "labels", [t for t in labels if t != -100], vocab_size)
        if len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
            truncated += 1
        all_ids.append(ids)
        all_labels.append(labels)
    return all_ids, all_labels, truncated


def _check_in_vocab(where: str, field: str, ids: list[int], vocab_size: int) -> None:
    bad = next((t for t in ids if t < 0 or t >= vocab_size), None)
    if bad is not None:
        extra = " or -100 (not trained)" if field == "labels" else ""
        # ConfigError (exit 2): the data was tokenized for another tokenizer than --model_name_or_path's.
        raise ConfigError(
            f"{where}: '{field}' holds {bad}, outside the vocabulary; expected ids from 0 to {vocab_size - 1}{extra}"
        )
