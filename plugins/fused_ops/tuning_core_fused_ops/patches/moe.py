"""--fast_moe: the experts' forward becomes the scatter/gather grouped expert MLP (ops/moe.py).

Only the experts module is replaced: the router (top-k, normalisation) and the auxiliary
load-balancing loss stay the model's own code. The patch is set on the instance (``patches.install``):
parameters keep transformers' own names and [E, 2I, H] / [E, H, I] layout, so a saved checkpoint
is a plain transformers checkpoint and nothing is converted on save. Under peft's
``target_parameters`` the parameters are read through peft's parametrization at every call, so
LoRA on the experts flows through the same kernels.
"""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, PatchReport

from ..backend import resolve_backend
from ..moe_rules import MOE_ARCHITECTURES, MoeArchitecture
from ..moe_selection import MoeSelection, check_degree, check_model_type, world_size
from .install import patched_forward, set_forward

LABEL = "scatter_moe"


def _compatible(experts) -> str | None:
    """Why this experts module cannot take the kernel, or None (bias, transposed or interleaved layouts)."""
    if getattr(experts, "has_bias", False):
        return "it has expert biases"
    if getattr(experts, "is_transposed", False) or not getattr(experts, "is_concatenated", True):
        return "its expert weights are not in the [E, 2I, H] gate-then-up layout"
    if not getattr(experts, "has_gate", True):
        return "it has no gated activation"
    return None


def experts_forward(experts, use_triton: bool | None):
    from ..ops.moe import expert_mlp

    def forward(hidden_states, top_k_index, top_k_weights):
        # Read the parameters at each call: peft's target_parameters parametrizes them during its forward.
        return expert_mlp(
            hidden_states,
            experts.gate_up_proj,
            experts.down_proj,
            top_k_index,
            top_k_weights,
            experts.act_fn,
            use_triton=use_triton,
        )

    return forward


def shard_experts(model, group=None, use_triton: bool | None = None) -> int:
    """Expert parallelism over ``group`` (the default group if None): keep this rank's 1/N of every experts
    module's weights and run them through ``ops.moe_parallel``. Returns the number of modules sharded.

    Layer-level only: the trainer integration (DDP exclusion, gradient scaling, clipping, gather on save;
    design in the README) is not built yet, so ``--fast_moe N > 1`` is refused.
    """
    import torch
    import torch.distributed as dist

    from ..ops.moe_parallel import expert_parallel_mlp

    arch = moe_architecture_of(model)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    done = 0
    for module in model.modules():
        if type(module).__name__ != arch.experts_class:
            continue
        experts = module.gate_up_proj.shape[0]
        if experts % world:
            raise ConfigError(
                f"--fast_moe {world}: the expert-parallel degree must divide the number of experts ({experts})"
            )
        local = experts // world
        for name in ("gate_up_proj", "down_proj"):
            full = getattr(module, name)
            setattr(
                module,
                name,
                torch.nn.Parameter(
                    full.detach()[rank * local : (rank + 1) * local].clone(), requires_grad=full.requires_grad
                ),
            )

        def forward(hidden_states, top_k_index, top_k_weights, module=module):
            return expert_parallel_mlp(
                hidden_states,
                module.gate_up_proj,
                module.down_proj,
                top_k_index,
                top_k_weights,
                module.act_fn,
                group,
                use_triton=use_triton,
            )

        set_forward(module, forward, LABEL + "_expert_parallel")
        done += 1
    return done


def moe_architecture_of(model) -> MoeArchitecture:
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    check_model_type(model_type, "the loaded model")
    return MOE_ARCHITECTURES[model_type]


def patch_moe(model, selection: MoeSelection, report: PatchReport | None = None) -> PatchReport:
    arch = moe_architecture_of(model)
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    check_degree(
        selection.ep_degree, getattr(base.config, arch.num_experts_key, None), world_size(), "the model config"
    )
    use_triton, note = resolve_backend(selection.backend)
    report = report or PatchReport(plugin="fused_ops", notes=[note])
    done, skipped = 0, []
    for module in base.modules():
        if type(module).__name__ != arch.experts_class or patched_forward(module):
            continue
        why = _compatible(module)
        if why:
            skipped.append(why)
            continue
        set_forward(module, experts_forward(module, use_triton), LABEL)
        done += 1
    if not done and not skipped:
        raise ConfigError(f"--fast_moe: no {arch.experts_class} module found in this {arch.model_type} model")
    if done:
        report.replaced[f"{arch.experts_class}.forward -> scatter/gather grouped expert MLP"] = done
        report.notes.append(
            "fast MoE: routing (top-k, normalisation, aux loss) is the model's own; checkpoints "
            "keep transformers' layout"
        )
    for why in sorted(set(skipped)):
        report.notes.append(f"fast MoE: {skipped.count(why)} {arch.experts_class} left as they are ({why})")
    return report
