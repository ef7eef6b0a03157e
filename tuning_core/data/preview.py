"""Show processed examples the way the model trains on them: masked and trained text told apart.

On a terminal the trained text is green and the masked text grey; when piped, trained text is wrapped in
[[ ]] markers instead. ``as_json`` prints one JSON object per example with the raw ``input_ids``/``labels``.
"""

from __future__ import annotations

import json
from itertools import groupby

from tuning_core.data.masking import IGNORE_INDEX

OPEN, CLOSE = "[[", "]]"
GREEN, GREY, BOLD, RESET = "\x1b[32m", "\x1b[90m", "\x1b[1m", "\x1b[0m"
NEWLINE = "↵\n"  # keep newlines visible: templates often hinge on them


def render_preview(data, tokenizer, n: int = 3, color: bool = False, as_json: bool = False) -> str:
    """``data`` is a ProcessedData (its stats head the text) or a dataset with input_ids/labels."""
    dataset = getattr(data, "train", data)
    stats = getattr(data, "stats", None)
    if hasattr(dataset, "__len__"):
        rows = [dataset[i] for i in range(min(n, len(dataset)))]
    else:  # streamed
        from itertools import islice

        rows = list(islice(iter(dataset), n))
    if as_json:
        return "\n".join(json.dumps(_json_row(i, r, tokenizer), ensure_ascii=False) for i, r in enumerate(rows))
    out = []
    if stats:
        out.append(_summary(stats, stats.get("num_examples", 0) if not hasattr(dataset, "__len__") else len(dataset)))
    if not color:
        out.append(f"(trained text is between {OPEN} and {CLOSE}; ↵ marks a newline)")
    for i, row in enumerate(rows):
        ids, labels = row["input_ids"], row["labels"]
        trained = sum(1 for x in labels if x != IGNORE_INDEX)
        head = f"--- example {i}: {len(ids)} tokens, {trained} trained, {len(ids) - trained} masked ---"
        out.append(f"{BOLD}{head}{RESET}" if color else head)
        out.append(_marked_text(ids, labels, tokenizer, color))
    return "\n".join(out)


def _summary(stats: dict, total: int) -> str:
    parts = [f"format {stats.get('format')}", f"{total} examples"]
    if stats.get("num_truncated"):
        parts.append(f"{stats['num_truncated']} truncated to {stats.get('max_seq_length')} tokens")
    for key, what in (
        ("num_skipped_no_template", "without the response template"),
        ("num_dropped_no_labels", "with nothing to train"),
    ):
        if stats.get(key):
            parts.append(f"{stats[key]} dropped {what}")
    if stats.get("cache_hit"):
        parts.append("from the cache")
    return "data: " + ", ".join(parts)


def _marked_text(ids, labels, tokenizer, color: bool) -> str:
    # Decode growing prefixes and take the differences, so a group keeps the leading space a sentencepiece
    # decoder would strip from a group decoded on its own.
    def decode(upto):
        return tokenizer.decode(ids[:upto], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    pieces = []
    position, previous = 0, ""
    for is_trained, group in groupby(labels, key=lambda x: x != IGNORE_INDEX):
        end = position + len(list(group))
        text = decode(end)
        piece = text[len(previous) :] if text.startswith(previous) else tokenizer.decode(ids[position:end])
        position, previous = end, text
        piece = piece.replace("\n", NEWLINE)
        if color:
            pieces.append(f"{GREEN if is_trained else GREY}{piece}{RESET}")
        else:
            pieces.append(f"{OPEN}{piece}{CLOSE}" if is_trained else piece)
    return "".join(pieces)


def _json_row(index: int, row, tokenizer) -> dict:
    ids, labels = list(row["input_ids"]), list(row["labels"])
    trained = [i for i, lab in zip(ids, labels, strict=False) if lab != IGNORE_INDEX]
    return {
        "index": index,
        "num_tokens": len(ids),
        "num_trained": len(trained),
        "text": tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "trained_text": tokenizer.decode(trained, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "input_ids": ids,
        "labels": labels,
    }
