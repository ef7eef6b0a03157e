"""Helpers shared by the data tests."""

import json

from tuning_core.data.arguments import DataArguments

MASK = "·"  # how a masked position shows in expected label lists


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def config(**values):
    """A DataArguments (read by attribute, like the core's Config), caching off unless asked for."""
    values.setdefault("data_cache", False)
    return DataArguments(**values)


def tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


def label_tokens(tok, labels):
    """Labels as token strings, MASK where -100: a readable form for exact comparisons."""
    return [MASK if x == -100 else tok.convert_ids_to_tokens(x) for x in labels]
