"""Which expert modules --fast_moe replaces, per architecture. Pure data, no torch.

Kept apart from ``rules.py`` (the dense kernels): the expert MLP is replaced on its own flag, and the
router (top-k, normalisation, auxiliary loss) stays the model's own code, which calls the experts with
the routing it chose.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MoeArchitecture:
    model_type: str
    experts_class: str  # transformers 5: forward(hidden_states, top_k_index, top_k_weights), 3-D weights
    num_experts_key: str  # config key holding the number of experts
    lora_targets: tuple[str, ...]  # linear modules peft's target_modules can adapt in this architecture
    expert_parameters: tuple[str, ...] = ("experts.gate_up_proj", "experts.down_proj")


_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")

MOE_ARCHITECTURES: dict[str, MoeArchitecture] = {
    "mixtral": MoeArchitecture("mixtral", "MixtralExperts", "num_local_experts", _ATTENTION),
    "granitemoe": MoeArchitecture("granitemoe", "GraniteMoeExperts", "num_local_experts", _ATTENTION),
    # Qwen3-MoE layers listed in mlp_only_layers keep a dense gate/up/down MLP.
    "qwen3_moe": MoeArchitecture(
        "qwen3_moe",
        "Qwen3MoeExperts",
        "num_experts",
        _ATTENTION + ("gate_proj", "up_proj", "down_proj (dense layers only)"),
    ),
}

# Names a user may give to mean the experts or the router; none is an nn.Linear in transformers 5.
EXPERT_MODULE_NAMES = (
    "experts",
    "gate_up_proj",
    "w1",
    "w2",
    "w3",
    "input_linear",
    "output_linear",
    "gate",
    "router",
    "block_sparse_moe",
    "mlp",
)


def supported_moe_types() -> list[str]:
    return sorted(MOE_ARCHITECTURES)
