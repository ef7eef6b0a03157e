"""prepare_datasets: data files + flags + tokenizer -> datasets of unpadded ``input_ids`` and ``labels``."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from tuning_core.errors import ConfigError, DataError
from tuning_core.data import cache, formats
from tuning_core.data.arguments import unescape
from tuning_core.data.formats import Settings
from tuning_core.data.masking import IGNORE_INDEX, SpanEncoder
from tuning_core.data.readers import parse_files, read_bytes, resolve_files

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
    )


def prepare_datasets(config, tokenizer) -> ProcessedData:
    settings = settings_from_config(config)
    formats.check_flags(settings)
    train_path = getattr(config, "training_data_path", None)
    if not train_path:
        raise ConfigError("--training_data_path is required: the file, directory or glob of training data")
    use_cache = bool(getattr(config, "data_cache", True))
    train, stats = process_split(train_path, "--training_data_path", settings, tokenizer, use_cache)
    _log(stats, "training")
    eval_ds, eval_stats = None, None
    eval_path = getattr(config, "validation_data_path", None)
    if eval_path:
        eval_ds, eval_stats = process_split(eval_path, "--validation_data_path", settings, tokenizer, use_cache)
        _log(eval_stats, "validation")
    stats["eval"] = eval_stats
    return ProcessedData(train, eval_ds, stats)


def save_processed(processed: ProcessedData, output_dir) -> list[Path]:
    """Write output_dir/train_dataset/ (and validation_dataset/) as parquet, for --do_dataprocessing_only."""
    out = []
    for name, ds in (("train_dataset", processed.train), ("validation_dataset", processed.eval)):
        if ds is None:
            continue
        folder = Path(output_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "data.parquet"
        ds.to_parquet(str(target))
        out.append(target)
    return out


def process_split(path_spec: str, flag: str, settings: Settings, tokenizer, use_cache: bool = True):
    start = time.perf_counter()
    files = read_bytes(resolve_files(path_spec, flag))
    encoder = SpanEncoder(tokenizer, settings.max_seq_length)
    key_settings = dataclasses.asdict(settings)
    key_settings["chat_template"] = _chat_template_identity(settings.chat_template)
    key = cache.cache_key([f.digest for f in files], key_settings,
                          cache.tokenizer_fingerprint(tokenizer, encoder.backend))
    if use_cache:
        hit = cache.load(key)
        if hit is not None:
            dataset, stats = hit
            stats.update(cache_hit=True, seconds=time.perf_counter() - start, files=[str(f.path) for f in files])
            return dataset, stats

    records = parse_files(files)
    fmt = formats.detect_format(settings, records)
    stats = {"format": fmt, "files": [str(f.path) for f in files], "num_records": len(records),
             "max_seq_length": settings.max_seq_length}
    if fmt == "pretokenized":
        ids, labels, truncated = formats.pretokenized(records, settings.max_seq_length, len(tokenizer))
        index_of = None
        stats.update(num_truncated=truncated, num_skipped_no_template=0)
    else:
        texts = _texts(fmt, settings, records, tokenizer)
        encoded = encoder.encode(texts.texts, texts.spans, texts.add_special_tokens, texts.append_eos)
        ids, labels = encoded.input_ids, encoded.labels
        index_of = texts.keep
        stats.update(num_truncated=encoded.num_truncated, num_split_at_border=encoded.num_split,
                     num_skipped_no_template=texts.notes.get("num_skipped_no_template", 0), **{
                         k: v for k, v in texts.notes.items() if k not in ("num_skipped_no_template",)})
        if stats["num_skipped_no_template"]:
            logger.warning("%s: dropped %d examples without the response template %r (first: %s)", path_spec,
                           stats["num_skipped_no_template"], settings.response_template,
                           ", ".join(records.where(i) for i in texts.notes["skipped_indices"][:3]))

    ids, labels, untrained = _drop_untrained(ids, labels, index_of)
    if untrained:
        logger.warning("%s: dropped %d examples with no token to train on (all labels -100%s); first: %s",
                       path_spec, len(untrained), ", e.g. truncated to --max_seq_length before the response"
                       if stats["num_truncated"] else "", ", ".join(records.where(i) for i in untrained[:3]))
    if not ids:
        raise DataError(f"{path_spec}: no example is left to train on: each one has all labels -100 "
                        f"(nothing after the response template, no assistant turn, or truncated by "
                        f"--max_seq_length {settings.max_seq_length})")
    stats.update(num_examples=len(ids), num_dropped_no_labels=len(untrained),
                 num_tokens=sum(map(len, ids)),
                 num_trained_tokens=sum(len(x) - x.count(IGNORE_INDEX) for x in labels))
    table = _table(ids, labels)
    stats["seconds"] = time.perf_counter() - start
    dataset = cache.store(key, table, stats) if use_cache else None
    if dataset is None:
        import datasets
        from datasets.table import InMemoryTable

        dataset = datasets.Dataset(InMemoryTable(table))
    stats["cache_hit"] = False
    return dataset, stats


def _texts(fmt: str, settings: Settings, records, tokenizer) -> formats.Texts:
    if fmt == "input_output":
        return formats.input_output_texts(records)
    if fmt == "text_field":
        texts = formats.string_column(records, settings.dataset_text_field, "--dataset_text_field")
        return formats.completion_texts(texts, settings.response_template, records,
                                        settings.skip_missing_response_template)
    if fmt == "formatter_template":
        from tuning_core.data.formatter import render_all

        texts = render_all(settings.data_formatter_template, records)
        return formats.completion_texts(texts, settings.response_template, records,
                                        settings.skip_missing_response_template)
    if fmt == "chat":
        from tuning_core.data.chat import render_chats, resolve_chat_template

        template = resolve_chat_template(settings.chat_template, tokenizer)
        texts, spans, fallbacks = render_chats(records, tokenizer, template)
        # The template writes the special tokens (BOS, end-of-turn) itself.
        return formats.Texts(texts, spans, add_special_tokens=False, append_eos=False,
                             notes={"num_turns_located_by_content": fallbacks})
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
        logger.info("%s data: %d examples (%s) from the cache in %.2fs", split, stats["num_examples"],
                    stats["format"], stats["seconds"])
        dropped = stats.get("num_skipped_no_template", 0) + stats.get("num_dropped_no_labels", 0)
        if dropped:  # the first run warned in detail; say it again, briefly
            logger.warning("%s data: %d examples were dropped when this data was processed (%d without the "
                           "response template, %d with nothing to train)", split, dropped,
                           stats.get("num_skipped_no_template", 0), stats.get("num_dropped_no_labels", 0))
        return
    logger.info("%s data: %d examples (%s), %d tokens, %d trained, %d truncated to %d tokens, %.2fs", split,
                stats["num_examples"], stats["format"], stats["num_tokens"], stats["num_trained_tokens"],
                stats["num_truncated"], stats["max_seq_length"], stats["seconds"])
