"""The --fast_moe flag (fms-hf-tuning's form). No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FastMoeArguments:
    fast_moe: str | None = field(default=None, metadata={
        "help": "fms-hf-tuning form: True to replace the expert MLP of Mixtral, Granite MoE and Qwen3-MoE with the "
                "scatter/gather grouped kernels (every rank holds every expert), or an integer expert-parallel "
                "degree N (each of N ranks holds 1/N of the experts; N must divide the number of experts and the "
                "world size). False or absent: off.",
    })
