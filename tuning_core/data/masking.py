"""Tokenize texts and label exactly the characters meant for training.

Each example is a text plus the character spans to train on (the completion, or each assistant turn). The
full text is tokenized once, in a batch, with character offsets; a token is trained when it starts inside a
trained span. When a token straddles a span border (e.g. a response template that ends in the middle of a
word), the text is instead tokenized piece by piece at the borders, so no token ever mixes prompt and
completion. This works for byte-level BPE and sentencepiece alike, unlike matching the template's token ids.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_left
from dataclasses import dataclass
from operator import itemgetter

from tuning_core.errors import ConfigError

IGNORE_INDEX = -100
_start = itemgetter(0)


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: list[list[int]]
    num_truncated: int = 0
    num_split: int = 0  # examples tokenized piece by piece because a token straddled a span border


def backend_of(tokenizer, continuation: bool = False):
    """A private copy of the tokenizer's Rust backend, with no truncation or padding and honest offsets.

    ``trim_offsets`` is switched off so a token's offsets include its leading space; otherwise a template
    that ends in a space would look like a clean token border when it is not. With ``continuation`` the copy
    also stops inventing a leading space ("▁" or "Ġ") at the start of the text, for pieces that continue
    a text rather than start one.
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "_tokenizer", None) or getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(
            f"data processing needs a fast (Rust `tokenizers`) tokenizer; {type(tokenizer).__name__} "
            f"is not one (--tokenizer_name_or_path can point at one)"
        )
    spec = json.loads(backend.to_str())
    spec["truncation"] = None
    spec["padding"] = None
    _untrim(spec)
    if continuation:
        spec["normalizer"] = _without_prepend(spec.get("normalizer"))
        _no_prefix_space(spec.get("pre_tokenizer"))
    return Tokenizer.from_str(json.dumps(spec))


def _without_prepend(node):
    """Drop Llama-2-style ``Prepend("▁")`` normalizers."""
    if not isinstance(node, dict):
        return node
    if node.get("type") == "Prepend":
        return None
    if node.get("type") == "Sequence":
        kept = [n for n in (_without_prepend(n) for n in node.get("normalizers", [])) if n is not None]
        return {**node, "normalizers": kept}
    return node


def _no_prefix_space(node) -> None:
    if isinstance(node, dict):
        if node.get("type") == "Metaspace":
            node["prepend_scheme"] = "never"
            node.pop("add_prefix_space", None)
        elif node.get("type") == "ByteLevel":
            node["add_prefix_space"] = False
        for v in node.values():
            _no_prefix_space(v)
    elif isinstance(node, list):
        for v in node:
            _no_prefix_space(v)


def _untrim(node) -> None:
    if isinstance(node, dict):
        if node.get("trim_offsets") is True:
            node["trim_offsets"] = False
        for v in node.values():
            _untrim(v)
    elif isinstance(node, list):
        for v in node:
            _untrim(v)


class SpanEncoder:
    """Turns (text, trained spans) into ``input_ids`` and ``labels``, truncated to ``max_length``."""

    def __init__(self, tokenizer, max_length: int):
        self.backend = backend_of(tokenizer)
        self._tokenizer = tokenizer
        self._continuation = None
        self.eos_id = tokenizer.eos_token_id
        self.bos_id = getattr(tokenizer, "bos_token_id", None)
        self.max_length = max_length

    def encode(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        add_special_tokens: bool = True,
        append_eos: bool = True,
        prefix_id: tuple[int, list[bool]] | None = None,
    ) -> Encoded:
        """``prefix_id``: (token id, per-text flags) of a masked token to put before the text, e.g. BOS."""
        out = Encoded([], [])
        encodings = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        eos = self.eos_id if append_eos else None
        max_length = self.max_length
        ids_out, labels_out = out.input_ids, out.labels
        for text, example_spans, enc in zip(texts, spans, encodings, strict=False):
            ids = enc.ids
            labels = self._suffix_labels(ids, enc, example_spans, len(text))
            if labels is None:
                offsets = enc.offsets
                lo, hi = _body(offsets, len(text))
                labels = self._labels(ids, offsets, lo, hi, example_spans)
                if labels is None:  # a token straddles a border
                    ids, labels = self._piecewise(text, example_spans, ids, lo, hi)
                    out.num_split += 1
            if add_special_tokens and len(ids) > 1 and ids[0] == ids[1] == self.bos_id:  # the text wrote BOS too
                del ids[0], labels[0]
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
                labels.append(eos)
            if prefix_id is not None and prefix_id[1][len(ids_out)]:
                ids.insert(0, prefix_id[0])
                labels.insert(0, IGNORE_INDEX)
            if len(ids) > max_length:
                del ids[max_length:], labels[max_length:]
                out.num_truncated += 1
            ids_out.append(ids)
            labels_out.append(labels)
        return out

    @staticmethod
    def _suffix_labels(ids, enc, spans, text_len):
        """Fast path for one span that runs to the end of the text (every format but chat): ask the encoding
        which token holds the span's first character instead of converting all offsets. None: not applicable
        or a token straddles the border; the general path decides."""
        if len(spans) != 1 or spans[0][1] != text_len or spans[0][0] >= text_len:
            return None
        start = spans[0][0]
        t = enc.char_to_token(start)
        if t is None or enc.token_to_chars(t)[0] != start:
            return None
        return [IGNORE_INDEX] * t + ids[t:]

    @staticmethod
    def _labels(ids, offsets, lo, hi, spans):
        labels = [IGNORE_INDEX] * len(ids)
        for s, e in spans:
            i = bisect_left(offsets, s, lo, hi, key=_start)
            j = bisect_left(offsets, e, lo, hi, key=_start)
            if (i > lo and offsets[i - 1][1] > s) or (j > i and offsets[j - 1][1] > e):
                return None
            labels[i:j] = ids[i:j]
            if j == hi and hi < len(ids):  # specials the tokenizer appends belong to a span that ends the text
                labels[hi:] = ids[hi:]
        return labels

    def _piecewise(self, text, spans, ids, lo, hi):
        cuts = sorted({0, len(text), *(p for span in spans for p in span)})
        pieces = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]
        if self._continuation is None:
            self._continuation = backend_of(self._tokenizer, continuation=True)
        encodings = self.backend.encode_batch([text[a:b] for a, b in pieces[:1]], add_special_tokens=False)
        encodings += self._continuation.encode_batch([text[a:b] for a, b in pieces[1:]], add_special_tokens=False)
        new_ids = list(ids[:lo])
        labels = [IGNORE_INDEX] * lo
        for (a, b), enc in zip(pieces, encodings, strict=False):
            trained = any(s <= a and b <= e for s, e in spans)
            new_ids.extend(enc.ids)
            labels.extend(enc.ids if trained else [IGNORE_INDEX] * len(enc.ids))
        tail = ids[hi:]
        new_ids.extend(tail)
        ends_trained = any(e >= len(text) for _, e in spans)
        labels.extend(tail if ends_trained else [IGNORE_INDEX] * len(tail))
        return new_ids, labels


def _body(offsets, text_len: int) -> tuple[int, int]:
    """Token range [lo, hi) that comes from the text, excluding specials the tokenizer adds around it (BOS/EOS).

    Added specials have empty offsets (0, 0); a real token always covers at least one character.
    """
    lo, hi = 0, len(offsets)
    if text_len == 0:
        return hi, hi
    while lo < hi and offsets[lo] == (0, 0):
        lo += 1
    while hi > lo and offsets[hi - 1] == (0, 0):
        hi -= 1
    return lo, hi
