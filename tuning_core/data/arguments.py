"""The data flags, named and worded as in fms-hf-tuning so existing commands keep working."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\([ntr\\])")


def unescape(value: str | None) -> str | None:
    r"""Turn a literal ``\n`` (as typed in a shell) into a newline; also ``\t``, ``\r`` and ``\\``.

    Deliberately not ``unicode_escape``: that would mangle non-ASCII text in the template.
    """
    if value is None:
        return None
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(1)], value)


@dataclass
class DataArguments:
    """Data flags. Templates are unescaped where they are used (``unescape``), not here, so a value that
    passes through several config objects is never unescaped twice."""

    training_data_path: str | None = field(
        default=None,
        metadata={
            "help": "Path to the training data: a .json/.jsonl/.parquet/.arrow/.csv file, a directory or a glob."
        },
    )
    data_config_path: str | None = field(
        default=None,
        metadata={
            "help": "fms-hf-tuning data config (YAML or JSON): several datasets with data_paths, "
            "data_handlers, split ratios and sampling for mixing. Replaces --training_data_path. "
            "See docs/data.md."
        },
    )
    validation_data_path: str | None = field(
        default=None, metadata={"help": "Path to the validation data, in the same forms as --training_data_path."}
    )
    dataset_text_field: str | None = field(
        default=None,
        metadata={
            "help": "Training dataset text field containing a single sequence. Either the dataset_text_field "
            "or data_formatter_template needs to be supplied."
        },
    )
    response_template: str | None = field(
        default=None,
        metadata={
            "help": "For completion-only training: the text that precedes the response; everything up to and "
            "including it is not trained on."
        },
    )
    data_formatter_template: str | None = field(
        default=None,
        metadata={
            "help": "Formatter template to build a single sequence from the fields of each record, e.g. "
            "'### Input: {{input}} \\n\\n## Label: {{output}}'. Field names may contain letters, "
            "digits, spaces and . _ -. Needs --response_template."
        },
    )
    instruction_template: str | None = field(
        default=None,
        metadata={
            "help": "With --response_template, for multi-turn text: train from each response template to "
            "the next instruction template. Accepted with chat data, whose assistant turns decide "
            "what is trained."
        },
    )
    dataset_conversation_field: str | None = field(
        default=None,
        metadata={
            "help": "Field holding the conversation (a list of {role, content}) in chat data; default 'messages'."
        },
    )
    chat_template: str | None = field(
        default=None,
        metadata={
            "help": "Jinja chat template (a string or a path to a file) for data with a 'messages' list; "
            "defaults to the tokenizer's own chat template."
        },
    )
    max_seq_length: int = field(
        default=4096, metadata={"help": "Maximum sequence length in tokens; longer examples are truncated."}
    )
    packing: bool = field(
        default=False,
        metadata={
            "help": "Extended pretraining: concatenate the examples (each ending in EOS) and cut them into "
            "--max_seq_length chunks; every token is trained. Not with --response_template."
        },
    )
    do_dataprocessing_only: bool = field(
        default=False,
        metadata={
            "help": "Only process the data: write the tokenized datasets to output_dir/train_dataset (and "
            "validation_dataset) as parquet and exit without loading the model."
        },
    )
    skip_missing_response_template: bool = field(
        default=False,
        metadata={
            "help": "Drop (with a warning) examples in which --response_template does not occur, instead of failing."
        },
    )
    data_cache: bool = field(
        default=True,
        metadata={
            "help": "Reuse the processed data of an earlier run with the same files, settings and tokenizer "
            "(stored under $TUNING_CORE_CACHE or ~/.cache/tuning_core)."
        },
    )
    num_train_dataset_shards: int = field(
        default=1,
        metadata={
            "help": "With --do_dataprocessing_only: how many parquet shards "
            "(train_dataset/ds_00000.parquet, ...) the processed training data is written as."
        },
    )
    num_eval_dataset_shards: int = field(
        default=1,
        metadata={
            "help": "With --do_dataprocessing_only: how many parquet shards the processed validation data "
            "is written as."
        },
    )
    dataset_image_field: str | None = field(
        default=None,
        metadata={
            "help": "fms-hf-tuning's image column for vision-language tuning. Not supported yet: giving it is an error."
        },
    )
