"""A tiny gpt-oss checkpoint whose experts are stored in MXFP4, as the released gpt-oss models are.

MXFP4 (OCP microscaling): blocks of 32 FP4 (e2m1) values sharing one power-of-two scale (E8M0, bias 127).
gpt-oss stores each expert projection as ``<proj>_blocks`` (uint8, two FP4 codes per byte, low nibble first,
shape [experts, out, in/32, 16]) and ``<proj>_scales`` (uint8, [experts, out, in/32]). The builder draws
codes and scales, writes them, and returns the dequantized weights they stand for, computed here from the
format's definition, so a loader can be checked against it.
"""

from __future__ import annotations

import json
from pathlib import Path

# The 16 FP4 e2m1 values, indexed by their 4-bit code (sign bit 3).
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
BLOCK = 32
PROJECTIONS = ("gate_up_proj", "down_proj")


def encode(codes, exponents):
    """(codes [..., out, in] in 0..15, unbiased exponents [..., out, in/32]) -> (blocks, scales) as gpt-oss
    stores them."""
    import torch

    *lead, out_dim, in_dim = codes.shape
    pairs = codes.to(torch.uint8).reshape(*lead, out_dim, in_dim // BLOCK, BLOCK // 2, 2)
    blocks = pairs[..., 0] | (pairs[..., 1] << 4)
    scales = (exponents + 127).to(torch.uint8)
    return blocks.contiguous(), scales.contiguous()


def decode_reference(codes, exponents):
    """The weights [..., out, in] that MXFP4 codes and block exponents stand for (float32)."""
    import torch

    values = torch.tensor(E2M1, dtype=torch.float32)[codes.long()]
    scale = torch.pow(2.0, exponents.float()).repeat_interleave(BLOCK, dim=-1)
    return values * scale


def build_mxfp4_gpt_oss(
    out_dir, tokenizer_dir, seed: int = 0, hidden: int = 64, intermediate: int = 64, experts: int = 4, layers: int = 2
) -> dict:
    """Write a tiny MXFP4 gpt-oss to ``out_dir``; return {parameter name: dequantized float32 weight} in the
    layout transformers' GptOssExperts uses ([experts, in, out])."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, GptOssConfig, GptOssForCausalLM

    out_dir = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GptOssConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=experts,
        num_experts_per_tok=2,
        sliding_window=16,
        max_position_embeddings=256,
        layer_types=["sliding_attention", "full_attention"][:layers] * max(1, layers // 2),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    GptOssForCausalLM(config).to(torch.float32).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)

    weights_file = out_dir / "model.safetensors"
    state = load_file(str(weights_file))
    gen = torch.Generator().manual_seed(seed + 1)
    reference = {}
    for name in [n for n in state if n.endswith(PROJECTIONS)]:
        weight = state.pop(name)  # [experts, in, out]
        e, in_dim, out_dim = weight.shape
        codes = torch.randint(0, 16, (e, out_dim, in_dim), generator=gen)
        exponents = torch.randint(-6, -2, (e, out_dim, in_dim // BLOCK), generator=gen)  # small, trainable scale
        state[name + "_blocks"], state[name + "_scales"] = encode(codes, exponents)
        reference[name] = decode_reference(codes, exponents).transpose(1, 2).contiguous()
    save_file(state, str(weights_file), metadata={"format": "pt"})
    cfg = json.loads((out_dir / "config.json").read_text())
    cfg["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return reference
