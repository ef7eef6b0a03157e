"""Tokenizer special tokens: a pad token that needs no new embedding row."""

from __future__ import annotations

# Tokens some tokenizers ship unused for padding (Llama 3, Granite, ...), best first.
PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<|padding|>")


def existing_pad_token(tokenizer) -> str | None:
    """A token already in the vocabulary that can pad: a pad-like token, else unk, else eos, else bos."""
    vocab = tokenizer.get_vocab()
    for name in PAD_NAMES:
        if name in vocab:
            return name
    for token in (tokenizer.unk_token, tokenizer.eos_token, tokenizer.bos_token):
        if token is not None and token in vocab:
            return token
    return None
