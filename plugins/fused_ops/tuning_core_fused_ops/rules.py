"""Per-architecture patch rules: which class or function is replaced by what. Pure data, no torch.

``patcher.apply_rules`` is the one place that applies them.

Rule kinds:
    forward        the ``forward`` of every instance of class ``target`` (set on the instance)
    loss_function  the ``loss_function`` of instances of class ``target``
    function       the function ``target`` of the architecture's modeling module (process-wide)
    qkv            the LoRA q/k/v projections of instances of attention class ``target``, computed together
    lora_linear    every remaining LoRA linear layer of the model
"""

from __future__ import annotations

from dataclasses import dataclass, field

FEATURES = ("fused_linear", "cross_entropy", "rms_norm", "rope", "swiglu", "lora")


@dataclass(frozen=True)
class Rule:
    features: tuple[str, ...]  # the rule applies when any of these is selected
    kind: str
    target: str
    replacement: str  # name of the replacement (see patches/), also shown in the PatchReport


@dataclass(frozen=True)
class Architecture:
    model_type: str  # transformers' config.model_type
    modeling_module: str
    causal_lm: str
    decoder_attr: str  # the attribute of the causal LM holding the decoder stack
    rules: tuple[Rule, ...]
    not_applicable: dict[str, str] = field(default_factory=dict)  # feature -> why, for the report
    logits_divisor_attr: str | None = None  # config attribute the logits are divided by (Granite)
    router_aux_loss: bool = False  # MoE: add router_aux_loss_coef * aux_loss to the loss (Mixtral)
    softcap_attr: str | None = None  # config attribute of the final-logit soft-cap the fused loss applies (Gemma)
    mlp_kernel: str = "SwiGLU"  # the gated activation of its MLP, for the report and `tuning-core plugins`
    partial_rotary: bool = False  # its apply_rotary_pos_emb rotates the first cos.shape[-1] channels only (Phi-3)


def _loss_rules(causal_lm: str) -> tuple[Rule, ...]:
    return (
        Rule(("fused_linear",), "forward", causal_lm, "fused_linear_cross_entropy"),
        Rule(("cross_entropy",), "loss_function", causal_lm, "triton_cross_entropy"),
    )


_GENERIC_LORA = Rule(("lora",), "lora_linear", "LoraLayer", "fused_lora_linear")


def _llama_like(
    model_type: str,
    prefix: str,
    *,
    moe: bool = False,
    dense_mlp: bool = False,
    module: str | None = None,
    norm: str = "rms_norm",
    **options,
) -> Architecture:
    """``moe``: the experts are not patched here (``dense_mlp``: but the model also has plain MLP layers).
    ``norm``: "gemma_rms_norm" for Gemma's (1 + weight) RMSNorm. ``module``: the modeling module's folder."""
    rules = _loss_rules(f"{prefix}ForCausalLM") + (
        Rule(("rms_norm",), "forward", f"{prefix}RMSNorm", norm),
        Rule(("rope",), "function", "apply_rotary_pos_emb", "rope"),
        Rule(("lora",), "qkv", f"{prefix}Attention", "fused_lora_qkv"),
    )
    not_applicable = {}
    if moe and not dense_mlp:
        not_applicable["swiglu"] = f"{prefix}'s experts are batched 3-D weights with their own activation"
    else:
        rules += (Rule(("swiglu", "lora"), "forward", f"{prefix}MLP", "mlp"),)
    module = module or model_type
    return Architecture(
        model_type=model_type,
        modeling_module=f"transformers.models.{module}.modeling_{module}",
        causal_lm=f"{prefix}ForCausalLM",
        decoder_attr="model",
        rules=rules + (_GENERIC_LORA,),
        not_applicable=not_applicable,
        **options,
    )


def softcap_problem(value) -> str | None:
    """Why the fused loss cannot apply a final-logit soft-cap of ``value``; None when it can (unset, or > 0)."""
    if value is None:
        return None
    expected = "expected a finite number c > 0 (the fused loss computes c * tanh(logits / c)) or null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return expected
    if not value > 0 or value == float("inf"):  # also NaN
        return expected
    return None


ARCHITECTURES: dict[str, Architecture] = {
    "llama": _llama_like("llama", "Llama"),
    "mistral": _llama_like("mistral", "Mistral"),
    "granite": _llama_like("granite", "Granite", logits_divisor_attr="logits_scaling"),
    "mixtral": _llama_like("mixtral", "Mixtral", moe=True, router_aux_loss=True),
    # issue 18 "More architectures". Qwen3's q/k norms are Qwen3RMSNorm instances, so the norm rule covers them.
    "qwen2": _llama_like("qwen2", "Qwen2"),
    "qwen3": _llama_like("qwen3", "Qwen3"),
    # Gemma: (1 + weight) RMSNorm (also its q/k norms in Gemma 3), GeGLU MLP, final-logit soft-capping inside the
    # fused loss. Gemma 2's attention soft-capping lives in the attention, which no rule replaces.
    "gemma2": _llama_like(
        "gemma2", "Gemma2", norm="gemma_rms_norm", softcap_attr="final_logit_softcapping", mlp_kernel="GeGLU"
    ),
    "gemma3_text": _llama_like(
        "gemma3_text",
        "Gemma3",
        module="gemma3",
        norm="gemma_rms_norm",
        softcap_attr="final_logit_softcapping",
        mlp_kernel="GeGLU",
    ),
    # Phi-3: fused qkv_proj (one LoRA projection, the generic LoRA rule) and gate_up_proj (the MLP rule).
    "phi3": _llama_like("phi3", "Phi3", partial_rotary=True),
    # MoE: the dense parts here; the expert MLP is --fast_moe's.
    "granitemoe": _llama_like(
        "granitemoe", "GraniteMoe", moe=True, logits_divisor_attr="logits_scaling", router_aux_loss=True
    ),
    "qwen3_moe": _llama_like("qwen3_moe", "Qwen3Moe", moe=True, dense_mlp=True, router_aux_loss=True),
    "gpt_bigcode": Architecture(
        model_type="gpt_bigcode",
        modeling_module="transformers.models.gpt_bigcode.modeling_gpt_bigcode",
        causal_lm="GPTBigCodeForCausalLM",
        decoder_attr="transformer",
        rules=_loss_rules("GPTBigCodeForCausalLM") + (_GENERIC_LORA,),
        not_applicable={
            "rms_norm": "GPTBigCode uses LayerNorm",
            "rope": "GPTBigCode has learned absolute positions",
            "swiglu": "GPTBigCode's MLP uses GELU",
        },
    ),
}


def kernels_of(arch: Architecture) -> dict[str, str]:
    """feature -> the kernel (and where) it applies to this architecture; for `tuning-core plugins`."""
    out: dict[str, str] = {}
    lora: list[str] = []
    for rule in arch.rules:
        if rule.kind == "forward" and rule.replacement == "fused_linear_cross_entropy":
            text = f"fused linear cross-entropy ({rule.target})"
            if arch.logits_divisor_attr:
                text += f", logits divided by config.{arch.logits_divisor_attr}"
            if arch.softcap_attr:
                text += f", config.{arch.softcap_attr} soft-cap applied inside the chunks"
            if arch.router_aux_loss:
                text += ", plus the router auxiliary loss"
            out["fused_linear"] = text
        elif rule.kind == "loss_function":
            out["cross_entropy"] = f"Triton cross-entropy on the full logits ({rule.target})"
        elif rule.replacement in ("rms_norm", "gemma_rms_norm"):
            offset = " with the (1 + weight) offset" if rule.replacement == "gemma_rms_norm" else ""
            out["rms_norm"] = f"RMSNorm{offset} ({rule.target}, every instance)"
        elif rule.kind == "function":
            out["rope"] = f"RoPE honouring position_ids ({rule.target})"
        elif rule.replacement == "mlp":
            out["swiglu"] = f"{arch.mlp_kernel} ({rule.target})"
            lora.append(f"whole {rule.target} ({arch.mlp_kernel} inside)")
        elif rule.kind == "qkv":
            lora.append(f"{rule.target} q/k/v together")
        elif rule.kind == "lora_linear":
            lora.append("every other LoRA linear layer")
    out["lora"] = "fused LoRA: " + "; ".join(lora)
    return out


def architectures_details() -> dict[str, dict]:
    """model_type -> {"causal_lm", "kernels": {feature: kernel}, "not_applicable": {feature: why}}."""
    return {
        t: {"causal_lm": a.causal_lm, "kernels": kernels_of(a), "not_applicable": dict(a.not_applicable)}
        for t, a in sorted(ARCHITECTURES.items())
    }


def supported_model_types() -> list[str]:
    return sorted(ARCHITECTURES)


def unsupported_message(model_type: str | None, flags: str) -> str:
    return (
        f"fused_ops has no patch rules for model type {model_type!r} ({flags}); supported model types: "
        f"{', '.join(supported_model_types())}"
    )
