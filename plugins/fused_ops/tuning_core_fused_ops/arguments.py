"""The plugin's flags: fms-hf-tuning's forms and one readable flag per kernel. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class FusedOpsArguments:
    fast_kernels: list[str] = field(
        default_factory=list,
        metadata={
            "help": "fms-hf-tuning form: three booleans for fast loss, fast RMSNorm and fast RoPE, "
            "e.g. --fast_kernels True True True. The fast loss is the chunked fused linear cross-entropy.",
            "nargs": 3,
        },
    )
    fused_lora: list[str] = field(
        default_factory=list,
        metadata={
            "help": "fms-hf-tuning form: the quantized base kind and a boolean, e.g. --fused_lora auto_gptq True "
            "or --fused_lora bitsandbytes True. Needs --peft_method lora.",
            "nargs": 2,
        },
    )
    fused_linear_loss: bool = field(
        default=False,
        metadata={
            "help": "Compute the lm_head projection and the cross-entropy in chunks, never materialising the "
            "[tokens x vocab] logits (the loss path when labels are given in training).",
        },
    )
    fast_cross_entropy: bool = field(
        default=False,
        metadata={
            "help": "Use the Triton cross-entropy kernel on the full logits instead (exclusive with "
            "--fused_linear_loss).",
        },
    )
    fast_rms_norm: bool = field(default=False, metadata={"help": "Replace RMSNorm layers with the fused kernel."})
    fast_rope: bool = field(
        default=False,
        metadata={
            "help": "Replace the rotary position embedding with the fused kernel (honours position_ids, so it is "
            "correct with padding-free packing).",
        },
    )
    fast_swiglu: bool = field(
        default=False,
        metadata={
            "help": "Replace the MLP's silu(gate) * up with the fused SwiGLU kernel.",
        },
    )
    fast_lora: bool = field(
        default=False,
        metadata={
            "help": "Fuse LoRA projections (q/k/v together, o, and the whole gate/up/down MLP) into single autograd "
            "nodes; works over float and GPTQ-quantized bases. Needs --peft_method lora.",
        },
    )
    fused_ops_backend: Literal["auto", "triton", "torch"] = field(
        default="auto",
        metadata={
            "help": "auto: Triton on CUDA or under TRITON_INTERPRET=1, else the torch implementations; "
            "triton: fail if Triton cannot run; torch: always the torch implementations.",
            "choices": ["auto", "triton", "torch"],
        },
    )
    fused_loss_chunk_size: int = field(
        default=0,
        metadata={
            "help": "Tokens per chunk of the fused linear cross-entropy; 0 picks a size whose logits take at most "
            "0.4x the lm_head weight's memory (0.4 x hidden size tokens).",
        },
    )


@dataclass
class FastMoeArguments:
    fast_moe: str | None = field(
        default=None,
        metadata={
            "help": "fms-hf-tuning form: True to replace the expert MLP of Mixtral, Granite MoE and Qwen3-MoE with the "
            "scatter/gather grouped kernels (every rank holds every expert), or an integer expert-parallel "
            "degree N (each of N ranks holds 1/N of the experts; N must divide the number of experts and the "
            "world size). False or absent: off.",
        },
    )
