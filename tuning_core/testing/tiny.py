"""Tiny tokenizers and models built offline, for tests, benchmarks and the demo.

Nothing here touches a model hub: tokenizers are trained with `tokenizers` on
the bundled dataset and models get random weights from a config.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def bundled_dataset_path() -> Path:
    """The small JSONL dataset that ships with tuning-core (twitter-complaints shape)."""
    return Path(str(resources.files("tuning_core") / "resources" / "twitter_complaints_small.jsonl"))


def _corpus() -> list[str]:
    lines = []
    with open(bundled_dataset_path(), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            lines.append(row["output"])
    # Characters the data tests use, so no byte falls back to <unk>.
    lines.append("### Input: ### Output: ### Response: ## Label: Ünïcødé ✓ 日本語 -> {}[]()<>|\t\n 0123456789")
    return lines


def build_tokenizer(out_dir: str | Path, kind: str = "bpe", vocab_size: int = 512, pad_token: bool = False):
    """Train a tokenizer and save it as a transformers fast tokenizer in ``out_dir``.

    kind "bpe": byte-level BPE (GPT-2 / Llama-3 style). kind "sentencepiece":
    a Metaspace BPE like Llama-2's sentencepiece tokenizer (with a leading "▁").
    Like Llama, there is no pad token unless ``pad_token`` is set.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = [UNK, BOS, EOS] + (["<pad>"] if pad_token else [])
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    elif kind == "sentencepiece":
        tok = Tokenizer(models.BPE(unk_token=UNK, byte_fallback=False))
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = []
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    # Llama-style: prepend BOS, never append EOS automatically.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token="<pad>" if pad_token else None,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def tiny_config(
    arch: str,
    vocab_size: int,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 512,
    bos_token_id=1,
    eos_token_id=2,
):
    """A transformers config for a tiny model of ``arch`` ("llama", "gpt_bigcode", "mistral", "granite", "mixtral",
    "granitemoe", "qwen3_moe")."""
    import transformers

    intermediate = intermediate or hidden * 2
    common = dict(vocab_size=vocab_size, bos_token_id=bos_token_id, eos_token_id=eos_token_id, use_cache=True)
    if arch == "gpt_bigcode":
        return transformers.GPTBigCodeConfig(
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_inner=intermediate,
            n_positions=max_positions,
            multi_query=True,
            **common,
        )
    llama_like = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        **common,
    )
    if arch == "llama":
        return transformers.LlamaConfig(**llama_like)
    if arch == "mistral":
        return transformers.MistralConfig(sliding_window=None, **llama_like)
    if arch == "granite":
        return transformers.GraniteConfig(**llama_like)
    if arch == "mixtral":
        return transformers.MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **llama_like)
    if arch in MORE_ARCHITECTURES:
        return MORE_ARCHITECTURES[arch](transformers, llama_like)
    raise ValueError(f"unknown architecture {arch!r}")


def _gemma_like(config_class, llama_like: dict, **extra):
    head_dim = llama_like["hidden_size"] // llama_like["num_attention_heads"]
    layers = llama_like["num_hidden_layers"]
    return config_class(
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"] * (layers // 2) + ["full_attention"] * (layers % 2),
        **{**llama_like, "tie_word_embeddings": True},
        **extra,
    )


# Architectures of the fused_ops "more architectures" rules (issue 18): model_type -> config builder.
# Gemma keeps its own soft-capping defaults (Gemma 2: attention 50, final logits 30) so tests see them.
MORE_ARCHITECTURES = {
    "qwen2": lambda t, c: t.Qwen2Config(**c),
    "qwen3": lambda t, c: t.Qwen3Config(head_dim=c["hidden_size"] // c["num_attention_heads"], **c),
    "gemma2": lambda t, c: _gemma_like(t.Gemma2Config, c, attn_implementation="eager"),
    "gemma3_text": lambda t, c: _gemma_like(t.Gemma3TextConfig, c),
    "phi3": lambda t, c: t.Phi3Config(pad_token_id=None, **c),
    # MoE: 4 experts, top-2, the router aux loss on (fused_ops checks it is the model's own).
    "granitemoe": lambda t, c: t.GraniteMoeConfig(
        num_local_experts=4, num_experts_per_tok=2, logits_scaling=2.0, output_router_logits=True, **c
    ),
    "qwen3_moe": lambda t, c: t.Qwen3MoeConfig(
        num_experts=4,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        moe_intermediate_size=c["intermediate_size"],
        head_dim=c["hidden_size"] // c["num_attention_heads"],
        output_router_logits=True,
        **c,
    ),
}


def build_model(
    out_dir: str | Path,
    arch: str = "llama",
    tokenizer_dir: str | Path | None = None,
    tokenizer_kind: str = "bpe",
    seed: int = 0,
    vocab_size_override: int | None = None,
    **config_kwargs,
):
    """Build a randomly initialised tiny causal LM with its tokenizer and save both to ``out_dir``.

    ``vocab_size_override`` gives the model more embedding rows than the tokenizer has tokens
    (benchmarks use pretokenized data over a realistic vocabulary).
    """
    import torch
    import transformers

    out_dir = Path(out_dir)
    if tokenizer_dir is None:
        tok = build_tokenizer(out_dir, kind=tokenizer_kind)
    else:
        tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
        tok.save_pretrained(out_dir)
    cfg = tiny_config(
        arch,
        vocab_size=vocab_size_override or len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(out_dir)
    return out_dir
