"""The one place that applies the rules of ``rules.py`` to a model and reports what changed."""

from __future__ import annotations

import functools

from tuning_core.plugin_api import ConfigError, PatchReport

from .backend import resolve_backend
from .patches import causal_lm, lora_layers, mlp, norms, rope
from .patches.context import PatchContext
from .patches.install import patched_forward, set_forward, set_loss_function, set_module_function
from .rules import ARCHITECTURES, Architecture, Rule, unsupported_message
from .selection import Selection

PLUGIN = "fused_ops"

# replacement name -> factory(instance, ctx) returning the new callable, or None when it does not apply
_INSTANCE_FACTORIES = {
    "fused_linear_cross_entropy": causal_lm.fused_linear_cross_entropy_forward,
    "triton_cross_entropy": causal_lm.triton_cross_entropy_loss,
    "rms_norm": norms.rms_norm_forward,
    "gemma_rms_norm": norms.gemma_rms_norm_forward,
    "mlp": mlp.mlp_forward,
}

_FEATURE_NAMES = {
    "fused_linear": "fused linear cross-entropy",
    "cross_entropy": "Triton cross-entropy",
    "rms_norm": "fast RMSNorm",
    "rope": "fast RoPE",
    "swiglu": "fast SwiGLU/GeGLU",
    "lora": "fused LoRA",
}


def unwrap(model):
    """The transformers model inside PEFT wrappers."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def architecture_of(model, flags: str = "--fast_kernels/--fused_lora") -> Architecture:
    model_type = getattr(getattr(unwrap(model), "config", None), "model_type", None)
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        raise ConfigError(unsupported_message(model_type, flags))
    return arch


def _instances(model, class_name: str):
    return [m for m in model.modules() if type(m).__name__ == class_name]


def _target_name(rule: Rule, arch: Architecture) -> str:
    return {
        "forward": f"{rule.target}.forward",
        "loss_function": f"{rule.target}.loss_function",
        "function": f"{arch.modeling_module.rsplit('.', 1)[-1]}.{rule.target}",
        "qkv": f"{rule.target} LoRA q/k/v",
        "lora_linear": "other LoRA linear layers",
    }[rule.kind]


def _apply(rule: Rule, model, ctx: PatchContext, arch: Architecture) -> dict[str, int]:
    """Apply one rule; returns {"<target> -> <replacement>": count}."""
    done: dict[str, int] = {}

    def count(replacement: str, n: int = 1):
        label = f"{_target_name(rule, arch)} -> {replacement}"
        done[label] = done.get(label, 0) + n

    if rule.kind in ("forward", "loss_function"):
        factory = _INSTANCE_FACTORIES[rule.replacement]
        for instance in _instances(model, rule.target):
            if rule.kind == "forward" and patched_forward(instance):
                continue
            fn = factory(instance, ctx)
            if fn is None:
                continue
            if rule.kind == "forward":
                set_forward(instance, fn, rule.replacement)
            else:
                set_loss_function(instance, fn, rule.replacement)
            count(getattr(fn, "description", rule.replacement))
    elif rule.kind == "function":
        if ctx.use_triton is not False:
            make = functools.partial(rope.rope_function, partial=arch.partial_rotary)
            set_module_function(arch.modeling_module, rule.target, make, rule.replacement)
            count(f"{rule.replacement} (process-wide)")
    elif rule.kind == "qkv":
        for attention in _instances(model, rule.target):
            if lora_layers.install_qkv(attention, ctx):
                count(rule.replacement)
    elif rule.kind == "lora_linear":
        n = lora_layers.install_lora_linear(model, ctx)
        if n:
            count(rule.replacement, n)
    else:  # pragma: no cover - rules.py is checked by the tests
        raise ValueError(f"unknown rule kind {rule.kind!r}")
    return done


def check_quantized_lora_base(model, kind: str) -> None:
    """``--fused_lora KIND True`` promises LoRA over a quantized base: the loaded model must have one."""
    bases = [m.base_layer for m in model.modules() if lora_layers.is_lora_linear(m)]
    if not any(lora_layers.is_quantized_base(b) for b in bases):
        raise ConfigError(
            f"--fused_lora {kind} True fuses LoRA over a quantized base, but no LoRA layer of the "
            "loaded model sits on a quantized linear layer; load a quantized model (e.g. --auto_gptq "
            "or --bnb_qlora from the peft-gptq plugin), or use --fast_lora for a float base"
        )


def patch_model(model, selection: Selection) -> PatchReport:
    """Apply every rule of the model's architecture that a selected feature asks for."""
    arch = architecture_of(model)
    if selection.lora_base:
        check_quantized_lora_base(model, selection.lora_base)
    use_triton, backend_note = resolve_backend(selection.backend)
    ctx = PatchContext(selection=selection, arch=arch, use_triton=use_triton)
    report = PatchReport(plugin=PLUGIN, notes=[backend_note])
    target = unwrap(model)
    applied: set[str] = set()
    # Rules run in order: the MLP and q/k/v rules see their LoRA layers before the generic LoRA rule.
    for rule in arch.rules:
        wanted = selection.features & set(rule.features)
        if not wanted:
            continue
        done = _apply(rule, target, ctx, arch)
        report.replaced.update(done)
        if done:
            applied |= wanted
    for feature in sorted(selection.features - applied):
        name = _FEATURE_NAMES[feature]
        if feature in arch.not_applicable:
            report.notes.append(f"{name}: not applicable ({arch.not_applicable[feature]})")
        elif feature in ("rope", "cross_entropy") and use_triton is False:
            report.notes.append(
                f"{name}: nothing replaced on the torch backend (the model's own code is the torch reference)"
            )
        elif feature == "fused_linear":
            report.notes.append(
                f"{name}: not applied (the lm_head is not a plain bias-free linear layer, e.g. "
                "it carries LoRA or modules_to_save)"
            )
        elif feature == "lora":
            report.notes.append(
                f"{name}: no LoRA layer could be fused (none found, or their base layers are "
                "neither float linear layers nor supported quantized layers)"
            )
        else:
            report.notes.append(f"{name}: nothing matched in this {arch.model_type} model")
    if "fused_linear" in applied:
        report.replaces_loss = True  # the core must call the plain forward (it skips its own LM-head trimming)
        report.notes.append("fused linear cross-entropy: training forwards with labels return the loss and no logits")
    return report
