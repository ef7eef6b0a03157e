"""Quantize a causal LM with GPTQ, one decoder layer at a time, and save it as a GPTQ checkpoint.

Each layer is quantized on the outputs of the already-quantized layers before
it, as in the paper. With ``true_sequential`` the linears inside a layer are
also done in stages (e.g. q/k/v, then o, then gate/up, then down), each stage
seeing the inputs produced by the quantized stages before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tuning_core_peft_gptq import nibbles
from tuning_core_peft_gptq.checkpoint import QUANTIZE_CONFIG, GPTQFormat
from tuning_core_peft_gptq.gptq import QuantizedWeight, gptq_quantize
from tuning_core_peft_gptq.qlinear import QuantLinear


@dataclass
class QuantizeOptions:
    group_size: int = 128
    desc_act: bool = False
    sym: bool = True
    damp_percent: float = 0.01
    true_sequential: bool = True
    checkpoint_format: str = "gptq"

    def format(self) -> GPTQFormat:
        return GPTQFormat(
            bits=4,
            group_size=self.group_size,
            desc_act=self.desc_act,
            sym=self.sym,
            checkpoint_format=self.checkpoint_format,
            extra={
                "damp_percent": self.damp_percent,
                "true_sequential": self.true_sequential,
                "static_groups": False,
                "lm_head": False,
                "meta": {"quantizer": ["tuning-core-peft-gptq"]},
            },
        )


class _Captured(Exception):
    pass


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder layers: the one whose length is the configured layer count."""
    n_layers = model.config.get_text_config().num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and name:
            return name, module
    raise ValueError(f"cannot find the {n_layers} decoder layers of {type(model).__name__}")


def quantizable(linear: nn.Module) -> bool:
    """GPTQ packing needs both sides divisible by 8 (e.g. a 4-expert MoE router is left in float)."""
    if not isinstance(linear, nn.Linear) or isinstance(linear, QuantLinear):
        return False
    return linear.in_features % 8 == 0 and linear.out_features % 8 == 0


def calibration_batches(tokenizer, texts: list[str], num_samples: int, seq_len: int, batch_size: int = 8):
    """Concatenate the tokenized texts and cut equal-length chunks: no padding, no masks to carry."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=True)["input_ids"])
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        if len(ids) >= num_samples * seq_len:
            break
    seq_len = min(seq_len, len(ids))
    chunks = [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)][:num_samples]
    if not chunks:
        raise ValueError("the calibration data gave no tokens")
    data = torch.tensor(chunks)
    return [data[i : i + batch_size] for i in range(0, len(data), batch_size)]


def _capture_inputs(model, layers, batches, device):
    captured = []

    def grab(_module, args, kwargs):
        captured.append((args, kwargs))
        raise _Captured

    handle = layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for batch in batches:
            try:
                model(input_ids=batch.to(device), use_cache=False)
            except _Captured:
                pass
    finally:
        handle.remove()
    return captured


def _run(layer, inputs):
    outs = []
    for args, kwargs in inputs:
        out = layer(*args, **kwargs)
        outs.append(out[0] if isinstance(out, tuple) else out)
    return outs


def _with_hidden(args, kwargs, hidden):
    if args:
        return (hidden,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _stages(layer, linears: dict[str, nn.Linear], inputs) -> list[list[str]]:
    """Group the linears by the input tensor they share, in call order."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, a, n=name: seen.append((n, a[0]))) for name, m in linears.items()]
    try:
        _run(layer, inputs[:1])
    finally:
        for h in hooks:
            h.remove()
    stages: list[list[str]] = []
    last = None
    for name, tensor in seen:
        if name in {n for s in stages for n in s}:
            continue
        if last is not None and tensor is last:
            stages[-1].append(name)
        else:
            stages.append([name])
        last = tensor
    return stages


def _quantize_stage(layer, linears, names, inputs, opts, min_zero) -> dict[str, QuantizedWeight]:
    sums = {
        n: torch.zeros(linears[n].in_features, linears[n].in_features, device=linears[n].weight.device) for n in names
    }
    counts = dict.fromkeys(names, 0)

    def accumulate(name):
        def hook(_mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            sums[name] += x.t() @ x
            counts[name] += x.shape[0]

        return hook

    hooks = [linears[n].register_forward_pre_hook(accumulate(n)) for n in names]
    try:
        _run(layer, inputs)
    finally:
        for h in hooks:
            h.remove()
    results = {}
    for n in names:
        lin = linears[n]
        hessian = 2 * sums[n] / max(counts[n], 1)
        res = gptq_quantize(
            lin.weight.detach(),
            hessian,
            group_size=opts.group_size,
            desc_act=opts.desc_act,
            sym=opts.sym,
            damp_percent=opts.damp_percent,
            min_zero=min_zero,
        )
        # Later stages and layers must see what the checkpoint will compute.
        lin.weight.data = res.dequantize().t().to(lin.weight.dtype).to(lin.weight.device)
        results[n] = res
    return results


@torch.no_grad()
def quantize_model(model, batches, opts: QuantizeOptions, log=print) -> dict[str, QuantizedWeight]:
    """GPTQ every quantizable linear of the decoder layers; returns results by full module name."""
    model.eval()
    device = next(model.parameters()).device
    prefix, layers = decoder_layers(model)
    inputs = _capture_inputs(model, layers, batches, device)
    min_zero = 1 if (opts.checkpoint_format == "gptq" and not opts.sym) else 0
    results: dict[str, QuantizedWeight] = {}
    for i, layer in enumerate(layers):
        linears = {n: m for n, m in layer.named_modules() if quantizable(m)}
        stages = _stages(layer, linears, inputs) if opts.true_sequential else [list(linears)]
        for names in stages:
            for n, res in _quantize_stage(layer, linears, names, inputs, opts, min_zero).items():
                results[f"{prefix}.{i}.{n}"] = res
        outs = _run(layer, inputs)
        inputs = [_with_hidden(a, k, h) for (a, k), h in zip(inputs, outs, strict=False)]
        log(f"quantized layer {i + 1}/{len(layers)}: {', '.join(linears)}")
    return results


def to_quant_linear(linear: nn.Linear, res: QuantizedWeight, fmt: GPTQFormat) -> QuantLinear:
    stored_zeros = (res.zeros - fmt.zero_offset) & nibbles.MAXQ
    bias = linear.bias.detach() if linear.bias is not None else None
    return QuantLinear.from_packed(
        nibbles.pack_rows(res.q),
        nibbles.pack_cols(stored_zeros),
        res.scales,
        res.g_idx,
        bias=bias,
        zero_offset=fmt.zero_offset,
        group_size=fmt.group_size if fmt.group_size != -1 else linear.in_features,
        dtype=linear.weight.dtype,
    )


def save_quantized(model, results: dict[str, QuantizedWeight], fmt: GPTQFormat, out_dir, tokenizer=None) -> Path:
    """Swap in packed layers and write a GPTQ checkpoint (safetensors + quantize_config.json)."""
    import json

    out_dir = Path(out_dir)
    for name, res in results.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, to_quant_linear(getattr(parent, child), res, fmt))
    model.config.quantization_config = fmt.to_dict()
    model.save_pretrained(out_dir)
    (out_dir / QUANTIZE_CONFIG).write_text(json.dumps(fmt.to_dict(), indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
