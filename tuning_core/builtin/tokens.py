"""Tokenizer growth and pad tokens: --add_special_tokens, --embedding_size_multiple_of, a pad without a resize."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuning_core.errors import ConfigError
from tuning_core.plugin_api import hookimpl

# Tokens some tokenizers ship unused for padding (Llama 3, Granite, ...), best first.
PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|finetune_right_pad|>", "<|padding|>")


@dataclass
class TokenizerArguments:
    add_special_tokens: list[str] | None = field(
        default=None,
        metadata={
            "help": "Special tokens to add to the tokenizer (fms-hf-tuning's flag). The embeddings grow and the new "
            "rows train; with LoRA they are saved in the adapter as trainable tokens."
        },
    )
    embedding_size_multiple_of: int = field(
        default=1,
        metadata={
            "help": "Pad the embedding size up to a multiple of this after adding tokens (e.g. 64 for tensor "
            "cores); the extra rows belong to no token."
        },
    )


@hookimpl
def tuning_core_config_classes():
    return [TokenizerArguments]


@hookimpl
def tuning_core_validate_config(config):
    if config.embedding_size_multiple_of < 1:
        raise ConfigError(
            f"--embedding_size_multiple_of must be a positive integer, got {config.embedding_size_multiple_of}"
        )
    tokens = config.add_special_tokens or []
    if any(not t.strip() for t in tokens):
        raise ConfigError("--add_special_tokens: a token cannot be empty or only whitespace")
    dup = sorted({t for t in tokens if tokens.count(t) > 1})
    if dup:
        raise ConfigError(f"--add_special_tokens: {dup[0]!r} is given twice")


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


def grow_tokenizer(config, model, tokenizer) -> str | None:
    """Add --add_special_tokens and pad the embeddings to --embedding_size_multiple_of, as fms-hf-tuning does:
    new rows start at the mean of the old ones. Returns a banner line, or None when nothing changed.

    The ids of the tokens added are left on the tokenizer (``tuning_core_new_token_ids``) for the PEFT step."""
    multiple = config.embedding_size_multiple_of if config.has("embedding_size_multiple_of") else 1
    tokens = (config.add_special_tokens if config.has("add_special_tokens") else None) or []
    before = len(tokenizer)
    added = tokenizer.add_tokens(list(tokens), special_tokens=True) if tokens else 0
    new_ids = list(range(before, before + added))
    tokenizer.tuning_core_new_token_ids = new_ids
    rows = model.get_input_embeddings().weight.shape[0]
    target = multiple * math.ceil(max(rows, len(tokenizer)) / multiple)
    if target == rows:
        return f"added tokens {tokens} (ids {new_ids})" if added else None
    model.resize_token_embeddings(target, mean_resizing=False)
    import torch

    with torch.no_grad():
        for layer in {
            id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
        }.values():
            weight = layer.weight
            weight[rows:] = weight[:rows].mean(dim=0, keepdim=True)
    if getattr(model.config, "vocab_size", None) is not None:
        model.config.vocab_size = target
    return f"added {added} token(s) {tokens} (ids {new_ids}); embeddings {rows} -> {target} rows"


def new_token_adapter_indices(model, tokenizer) -> dict[str, list[int]] | None:
    """peft trainable_token_indices that train and save the rows of the tokens this run added (input and, when
    untied, output embeddings)."""
    ids = list(getattr(tokenizer, "tuning_core_new_token_ids", []) or [])
    if not ids:
        return None
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    names = {}
    for name, module in model.named_modules():
        if module is inp:
            names["in"] = name.rpartition(".")[2]
        elif out is not None and module is out and out.weight is not inp.weight:
            names["out"] = name.rpartition(".")[2]
    return {name: ids for name in names.values()}
