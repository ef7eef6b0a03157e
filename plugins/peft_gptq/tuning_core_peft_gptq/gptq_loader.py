"""Load a GPTQ checkpoint into a transformers model whose quantized linears are QuantLinear.

The model is built with its parameters on the meta device (buffers such as
rotary frequencies stay real), the packed layers are created straight from the
checkpoint tensors, and the remaining float tensors are assigned in the compute
dtype: no float copy of a quantized weight is ever made.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tuning_core_peft_gptq.checkpoint import GPTQFormat, read_gptq_format
from tuning_core_peft_gptq.qlinear import QuantLinear


class GPTQLoadError(ValueError):
    pass


def _local_dir(model_path: str) -> Path:
    path = Path(model_path)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model_path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))


def _weight_files(root: Path) -> list[Path]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [root / s for s in shards]
    files = sorted(p for p in root.glob("*.safetensors") if not p.name.startswith("adapter_"))
    if not files:
        raise GPTQLoadError(f"no .safetensors weights in {root}")
    return files


def read_tensors(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in _weight_files(root):
        tensors.update(load_file(str(file)))
    return tensors


def _install_quant_linears(model, tensors, fmt: GPTQFormat, dtype: torch.dtype) -> list[str]:
    prefixes = sorted(k[: -len(".qweight")] for k in tensors if k.endswith(".qweight"))
    if not prefixes:
        raise GPTQLoadError("the checkpoint has no packed .qweight tensors")
    for prefix in prefixes:
        try:
            target = model.get_submodule(prefix)
        except AttributeError as exc:
            raise GPTQLoadError(f"checkpoint layer {prefix!r} has no module of that name in the model") from exc
        qweight = tensors.pop(f"{prefix}.qweight")
        if not isinstance(target, torch.nn.Linear) or (target.in_features, target.out_features) != (
            qweight.shape[0] * 8,
            qweight.shape[1],
        ):
            raise GPTQLoadError(f"{prefix}: packed shape {tuple(qweight.shape)} does not fit {target}")
        layer = QuantLinear.from_packed(
            qweight,
            tensors.pop(f"{prefix}.qzeros"),
            tensors.pop(f"{prefix}.scales"),
            tensors.pop(f"{prefix}.g_idx"),
            bias=tensors.pop(f"{prefix}.bias", None) if target.bias is not None else None,
            zero_offset=fmt.zero_offset,
            group_size=None if fmt.group_size == -1 else fmt.group_size,
            dtype=dtype,
        )
        tensors.pop(f"{prefix}.bias", None)  # GPTQModel writes zero biases for bias-free layers
        parent_name, _, child = prefix.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return prefixes


def load_gptq_model(
    model_path: str,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
    device: str | torch.device | None = None,
    backend: str = "auto",
    attn_implementation: str | None = None,
):
    """Return (model, fmt): the model in eval mode with every packed layer as a QuantLinear."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    fmt = read_gptq_format(model_path)
    if fmt is None:
        raise GPTQLoadError(f"{model_path} is not a GPTQ checkpoint (no quantize_config.json)")
    if fmt.problems():
        raise GPTQLoadError(f"{model_path}: unsupported GPTQ checkpoint: {'; '.join(fmt.problems())}")
    root = _local_dir(str(model_path))
    config = AutoConfig.from_pretrained(root, trust_remote_code=trust_remote_code)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the layers are ours; transformers must not look for GPTQModel
    with init_empty_weights(include_buffers=False):
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code, **extra)

    tensors = read_tensors(root)
    quantized = _install_quant_linears(model, tensors, fmt, dtype)
    floats = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    result = model.load_state_dict(floats, strict=False, assign=True)
    if result.unexpected_keys:
        raise GPTQLoadError(f"checkpoint tensors with no place in the model: {result.unexpected_keys[:5]}")
    model.tie_weights()
    left = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.device.type == "meta"]
    if left:
        raise GPTQLoadError(f"the checkpoint does not provide {left[:5]}")
    for module in model.modules():
        if isinstance(module, QuantLinear):
            module.backend = backend
    model.requires_grad_(False)
    model.eval()
    model.gptq_format = fmt  # for the banner and for tools; config.json stays free of quantization_config
    model.gptq_layers = len(quantized)
    if device is not None:
        model.to(device)
    return model, fmt
