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


def _loss_rules(causal_lm: str) -> tuple[Rule, ...]:
    return (
        Rule(("fused_linear",), "forward", causal_lm, "fused_linear_cross_entropy"),
        Rule(("cross_entropy",), "loss_function", causal_lm, "triton_cross_entropy"),
    )


_GENERIC_LORA = Rule(("lora",), "lora_linear", "LoraLayer", "fused_lora_linear")


def _llama_like(model_type: str, prefix: str, *, moe: bool = False, **options) -> Architecture:
    rules = _loss_rules(f"{prefix}ForCausalLM") + (
        Rule(("rms_norm",), "forward", f"{prefix}RMSNorm", "rms_norm"),
        Rule(("rope",), "function", "apply_rotary_pos_emb", "rope"),
        Rule(("lora",), "qkv", f"{prefix}Attention", "fused_lora_qkv"),
    )
    not_applicable = {}
    if moe:
        not_applicable["swiglu"] = f"{prefix}'s experts are batched 3-D weights with their own activation"
    else:
        rules += (Rule(("swiglu", "lora"), "forward", f"{prefix}MLP", "mlp"),)
    return Architecture(model_type=model_type, modeling_module=f"transformers.models.{model_type}.modeling_{model_type}",
                        causal_lm=f"{prefix}ForCausalLM", decoder_attr="model", rules=rules + (_GENERIC_LORA,),
                        not_applicable=not_applicable, **options)


ARCHITECTURES: dict[str, Architecture] = {
    "llama": _llama_like("llama", "Llama"),
    "mistral": _llama_like("mistral", "Mistral"),
    "granite": _llama_like("granite", "Granite", logits_divisor_attr="logits_scaling"),
    "mixtral": _llama_like("mixtral", "Mixtral", moe=True, router_aux_loss=True),
    "gpt_bigcode": Architecture(
        model_type="gpt_bigcode", modeling_module="transformers.models.gpt_bigcode.modeling_gpt_bigcode",
        causal_lm="GPTBigCodeForCausalLM", decoder_attr="transformer",
        rules=_loss_rules("GPTBigCodeForCausalLM") + (_GENERIC_LORA,),
        not_applicable={"rms_norm": "GPTBigCode uses LayerNorm", "rope": "GPTBigCode has learned absolute positions",
                        "swiglu": "GPTBigCode's MLP uses GELU"},
    ),
}


def supported_model_types() -> list[str]:
    return sorted(ARCHITECTURES)


def unsupported_message(model_type: str | None, flags: str) -> str:
    return (f"fused_ops has no patch rules for model type {model_type!r} ({flags}); supported model types: "
            f"{', '.join(supported_model_types())}")
