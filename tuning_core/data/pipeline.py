"""prepare_datasets: data files + flags + tokenizer -> datasets of unpadded ``input_ids`` and ``labels``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from tuning_core.data import cache, formats
from tuning_core.data.arguments import unescape
from tuning_core.data.data_config import (
    DataConfig,
    DataProcessorConfig,
    DatasetConfig,
    from_flags,
    load_data_config,
    resolve_paths,
)
from tuning_core.data.formats import Settings
from tuning_core.data.masking import IGNORE_INDEX
from tuning_core.data.readers import parse_files, read_bytes, resolve_files
from tuning_core.errors import ConfigError, DataError

logger = logging.getLogger("tuning_core.data")


@dataclass
class ProcessedData:
    train: object  # datasets.Dataset with columns input_ids, labels
    eval: object | None = None
    stats: dict = field(default_factory=dict)


def settings_from_config(config) -> Settings:
    """The processing settings, read by attribute so any config object (or a SimpleNamespace) works."""
    get = lambda name, default=None: getattr(config, name, default)  # noqa: E731
    return Settings(
        dataset_text_field=get("dataset_text_field"),
        response_template=unescape(get("response_template")),
        data_formatter_template=unescape(get("data_formatter_template")),
        chat_template=get("chat_template"),
        max_seq_length=4096 if get("max_seq_length") is None else int(get("max_seq_length")),
        skip_missing_response_template=bool(get("skip_missing_response_template", False)),
        instruction_template=unescape(get("instruction_template")),
        dataset_conversation_field=get("dataset_conversation_field"),
        packing=bool(get("packing", False)),
        model_vocab_size=_model_vocab_size(get("model_name_or_path")),
    )


def _model_vocab_size(model_path) -> int | None:
    """vocab_size from the model's config.json (or its text_config), without loading the model."""
    try:
        data = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return None
    size = data.get("vocab_size") or (data.get("text_config") or {}).get("vocab_size")
    return size if isinstance(size, int) and size > 0 else None


def data_config_for(config, handlers: dict | None = None) -> DataConfig:
    """The run's data config: --data_config_path's file, or the data flags as a one-dataset config."""
    path = getattr(config, "data_config_path", None)
    if path:
        if getattr(config, "training_data_path", None):
            raise ConfigError(
                "--training_data_path and --data_config_path are alternatives: list the training "
                "files under data_paths in the data config"
            )
        return load_data_config(path, handlers, getattr(config, "validation_data_path", None))
    if not getattr(config, "training_data_path", None):
        raise ConfigError(
            "--training_data_path is required: the file, directory or glob of training data (or --data_config_path)"
        )
    return from_flags(config)


def prepare_datasets(config, tokenizer, pm=None) -> ProcessedData:
    from tuning_core.data.handlers import registered_handlers

    settings = settings_from_config(config)
    formats.check_flags(settings)
    handlers = registered_handlers(pm)
    data_config = data_config_for(config, handlers)
    files = resolve_paths(data_config)
    use_cache = bool(getattr(config, "data_cache", True))
    parts = []
    for d in data_config.datasets:
        dataset, stats = process_dataset(
            d, files[d.name], settings, tokenizer, handlers, data_config.dataprocessor, use_cache
        )
        _log(stats, d.where if data_config.path else ("validation" if d.share("validation") else "training"))
        parts.append((d, dataset, stats))
    from tuning_core.data.mixing import combine

    return combine(parts, data_config, settings.max_seq_length if settings.packing else None)


def save_processed(
    processed: ProcessedData, output_dir, num_train_shards: int = 1, num_eval_shards: int = 1
) -> list[Path]:
    """Write output_dir/train_dataset/ (and validation_dataset/) as parquet shards, for --do_dataprocessing_only."""
    from tuning_core.data.shards import write_shards

    out = []
    for name, ds, shards in (
        ("train_dataset", processed.train, num_train_shards),
        ("validation_dataset", processed.eval, num_eval_shards),
    ):
        if ds is None:
            continue
        if not hasattr(ds, "to_parquet"):  # streamed: materialize what it yields
            import datasets

            ds = datasets.Dataset.from_list(list(ds))
        out += write_shards(ds, Path(output_dir) / name, shards)
    return out


def process_split(path_spec: str, flag: str, settings: Settings, tokenizer, use_cache: bool = True):
    """One file, directory or glob processed as the data flags say (the flag path of ``process_dataset``)."""
    from tuning_core.data.handlers import registered_handlers

    d = DatasetConfig("training", [path_spec], where=flag, flag=flag)
    return process_dataset(
        d, resolve_files(path_spec, flag), settings, tokenizer, registered_handlers(), DataProcessorConfig(), use_cache
    )


def process_dataset(
    d: DatasetConfig,
    paths,
    settings: Settings,
    tokenizer,
    handlers: dict,
    processor: DataProcessorConfig,
    use_cache: bool = True,
):
    """Read one dataset's files, run its handlers, then (untokenized data) the format's handler: one
    (datasets.Dataset of input_ids/labels, stats). The result is cached by content, settings and tokenizer."""
    from tuning_core.data.handlers import HandlerContext, apply_handler

    start = time.perf_counter()
    files = read_bytes(paths, d.builder)
    chat_template = processor.chat_template or settings.chat_template
    context = HandlerContext(tokenizer, settings.max_seq_length, d.where, notes={"chat_template": chat_template})
    encoder = context.span_encoder()
    key_settings = dataclasses.asdict(settings)
    key_settings["chat_template"] = _chat_template_identity(chat_template)
    key_settings["handlers"] = [(h.name, h.arguments, handlers[h.name].identity()) for h in d.data_handlers]
    key = cache.cache_key(
        [f.digest for f in files],
        json.loads(json.dumps(key_settings, default=str)),
        cache.tokenizer_fingerprint(tokenizer, encoder.backend),
    )
    label = (d.flag and d.data_paths[0]) or d.where
    if use_cache:
        hit = cache.load(key)
        if hit is not None:
            dataset, stats = hit
            stats.update(cache_hit=True, seconds=time.perf_counter() - start, files=[str(f.path) for f in files])
            return dataset, stats

    records = parse_files(files)
    stats = {
        "files": [str(f.path) for f in files],
        "num_records": len(records),
        "max_seq_length": settings.max_seq_length,
    }
    used = []
    for i, spec in enumerate(d.data_handlers):
        context.where = f"{d.where}: data_handlers[{i}] ({spec.name})"
        records = apply_handler(spec.name, handlers[spec.name], spec.arguments, records, context)
        used.append(spec.name)
    context.where = d.where
    # Data a handler tokenized is used as it is; the text flags are for the datasets still untokenized.
    fmt = "pretokenized" if used and "input_ids" in records.names else formats.detect_format(settings, records)
    if fmt != "pretokenized":
        for name, arguments in _format_handlers(fmt, settings):
            records = apply_handler(name, handlers[name], arguments, records, context)
    elif used:
        fmt = used[-1] if getattr(records, "trusted_tokens", False) else "pretokenized"
    stats["format"] = fmt
    vocab = max(len(tokenizer), settings.model_vocab_size or 0)
    ids, labels, truncated = formats.pretokenized(records, settings.max_seq_length, vocab)
    notes = context.notes
    stats.update(
        num_truncated=truncated + notes.get("num_truncated", 0),
        num_skipped_no_template=notes.get("num_skipped_no_template", 0),
    )
    for k in ("num_split_at_border", "num_turns_located_by_content"):
        if k in notes:
            stats[k] = notes[k]
    if stats["num_skipped_no_template"]:
        logger.warning(
            "%s: dropped %d examples without the response template %r (first: %s)",
            label,
            stats["num_skipped_no_template"],
            settings.response_template,
            ", ".join(notes.get("skipped_where", [])),
        )

    ids, labels, untrained = _drop_untrained(ids, labels, None)
    if untrained:
        logger.warning(
            "%s: dropped %d examples with no token to train on (all labels -100%s); first: %s",
            label,
            len(untrained),
            ", e.g. truncated to --max_seq_length before the response" if stats["num_truncated"] else "",
            ", ".join(records.where(i) for i in untrained[:3]),
        )
    if not ids:
        raise DataError(
            f"{label}: no example is left to train on: each one has all labels -100 "
            f"(nothing after the response template, no assistant turn, or truncated by "
            f"--max_seq_length {settings.max_seq_length})"
        )
    stats.update(
        num_examples=len(ids),
        num_dropped_no_labels=len(untrained),
        num_tokens=sum(map(len, ids)),
        num_trained_tokens=sum(len(x) - x.count(IGNORE_INDEX) for x in labels),
    )
    table = _table(ids, labels)
    stats["seconds"] = time.perf_counter() - start
    dataset = cache.store(key, table, stats) if use_cache else None
    if dataset is None:
        import datasets
        from datasets.table import InMemoryTable

        dataset = datasets.Dataset(InMemoryTable(table))
    stats["cache_hit"] = False
    return dataset, stats


FORMATTED = "__tuning_core_formatted_text"


def _format_handlers(fmt: str, settings: Settings) -> list[tuple[str, dict]]:
    """The built-in handlers that process untokenized data the way the data flags ask: the flag path is a data
    config whose handlers are chosen from the format."""

    def completion(column):
        return (
            "tokenize_and_mask_completion",
            {
                "fn_kwargs": {
                    "text_column_name": column,
                    "response_template": settings.response_template,
                    "instruction_template": settings.instruction_template,
                    "skip_missing_response_template": settings.skip_missing_response_template,
                }
            },
        )

    if fmt == "input_output":
        return [
            (
                "tokenize_and_apply_input_masking",
                {"fn_kwargs": {"input_column_name": "input", "output_column_name": "output"}},
            )
        ]
    if fmt == "text_field":
        return [completion(settings.dataset_text_field)]
    if fmt == "formatter_template":
        return [
            (
                "apply_custom_jinja_template",
                {"fn_kwargs": {"formatted_text_column_name": FORMATTED, "template": settings.data_formatter_template}},
            ),
            completion(FORMATTED),
        ]
    if fmt == "chat":
        return [
            (
                "tokenize_and_apply_chat_template_with_masking",
                {"fn_kwargs": {"conversation_column": settings.conversation_field}},
            )
        ]
    raise AssertionError(fmt)


def _chat_template_identity(value: str | None) -> str | None:
    if value and os.path.isfile(os.path.expanduser(value)):
        with open(os.path.expanduser(value), encoding="utf-8") as f:
            return f.read()
    return value


def _drop_untrained(ids, labels, index_of):
    """Remove examples with every label -100: they add nothing but would pass silently. Returns their record
    indices."""
    untrained = [i for i, lab in enumerate(labels) if lab.count(IGNORE_INDEX) == len(lab)]
    if not untrained:
        return ids, labels, []
    gone = set(untrained)
    keep = [i for i in range(len(ids)) if i not in gone]
    record_index = [index_of[i] if index_of else i for i in untrained]
    return [ids[i] for i in keep], [labels[i] for i in keep], record_index


def _table(ids: list[list[int]], labels: list[list[int]]):
    """A pyarrow Table with list<int64> columns, built from flat arrays rather than row by row."""
    import numpy as np
    import pyarrow as pa

    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    offsets_arr = pa.array(offsets.astype(np.int32), type=pa.int32())

    def column(rows):
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=total)
        return pa.ListArray.from_arrays(offsets_arr, pa.array(flat))

    return pa.table({"input_ids": column(ids), "labels": column(labels)})


def _log(stats: dict, split: str) -> None:
    if stats.get("cache_hit"):
        logger.info(
            "%s data: %d examples (%s) from the cache in %.2fs",
            split,
            stats["num_examples"],
            stats["format"],
            stats["seconds"],
        )
        dropped = stats.get("num_skipped_no_template", 0) + stats.get("num_dropped_no_labels", 0)
        if dropped:  # the first run warned in detail; say it again, briefly
            logger.warning(
                "%s data: %d examples were dropped when this data was processed (%d without the "
                "response template, %d with nothing to train)",
                split,
                dropped,
                stats.get("num_skipped_no_template", 0),
                stats.get("num_dropped_no_labels", 0),
            )
        return
    logger.info(
        "%s data: %d examples (%s), %d tokens, %d trained, %d truncated to %d tokens, %.2fs",
        split,
        stats["num_examples"],
        stats["format"],
        stats["num_tokens"],
        stats["num_trained_tokens"],
        stats["num_truncated"],
        stats["max_seq_length"],
        stats["seconds"],
    )
