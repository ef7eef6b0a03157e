"""GPTQ-LoRA and QLoRA against float LoRA: weight memory and training step time, one JSON line per result.

    python benchmarks/quantized.py                 # 8-layer, 512-wide Llama, vocab 8000 (the anchors' model)
    python benchmarks/quantized.py --quick         # tiny shapes, a smoke run
    python benchmarks/quantized.py --device cuda   # on a GPU (Triton kernels, bfloat16)
    python benchmarks/quantized.py --threads 1     # on a CPU shared with other jobs

Every variant runs in the same process on the same random-weight model, with
the same batch, so the ratios compare like with like. Step time is a bare
forward + backward + AdamW step on the LoRA weights (no Trainer), median of
--steps after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def build_float_model(out: Path, args) -> Path:
    import transformers

    from tuning_core.testing.tiny import tiny_config

    cfg = tiny_config(
        "llama",
        vocab_size=args.vocab,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        intermediate=args.intermediate,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(out)
    return out


def quantize(src: Path, out: Path, args) -> float:
    import transformers

    from tuning_core_peft_gptq.quantizer import QuantizeOptions, quantize_model, save_quantized

    model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).to(args.device)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(3, args.vocab, (4, args.seq), generator=g) for _ in range(args.calib_batches)]
    opts = QuantizeOptions(group_size=args.group_size, desc_act=True)
    t0 = time.perf_counter()
    results = quantize_model(model, batches, opts, log=lambda _: None)
    seconds = time.perf_counter() - t0
    save_quantized(model.cpu(), results, opts.format(), out)
    return seconds


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def linear_weight_bytes(model) -> dict[str, int]:
    """Bytes held by the decoder layers' linear weights, by how they are stored."""
    from tuning_core_peft_gptq.qlinear import QuantLinear

    out = {"float": 0, "gptq": 0, "bnb": 0, "count": 0}
    lm_head = model.get_output_embeddings()
    for module in model.modules():
        if module is lm_head:
            continue
        if isinstance(module, QuantLinear):
            out["gptq"] += _bytes([module.qweight, module.qzeros, module.scales, module.g_idx])
        elif type(module).__name__ == "Linear4bit":
            qs = module.weight.quant_state
            extra = [qs.absmax] + ([qs.state2.absmax, qs.state2.code, qs.offset] if qs.nested else []) + [qs.code]
            out["bnb"] += _bytes([module.weight]) + _bytes(extra)
        elif isinstance(module, torch.nn.Linear):
            out["float"] += _bytes([module.weight])
        else:
            continue
        out["count"] += 1
    return out


def model_bytes(model) -> int:
    return _bytes(list(model.parameters()) + list(model.buffers()))


def load_variant(name: str, float_dir: Path, gptq_dir: Path, dtype, device: str):
    import transformers

    if name.startswith("gptq"):
        from tuning_core_peft_gptq.gptq_loader import load_gptq_model

        model, _ = load_gptq_model(str(gptq_dir), dtype=dtype)
        return model.to(device)
    if name.startswith("qlora"):
        quant = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
        kwargs = {"device_map": {"": device}} if device != "cpu" else {}
        return transformers.AutoModelForCausalLM.from_pretrained(
            float_dir, quantization_config=quant, dtype=dtype, **kwargs
        )
    return transformers.AutoModelForCausalLM.from_pretrained(float_dir, dtype=dtype).to(device)


def step_times(model, args, device: str) -> list[float]:
    from peft import LoraConfig, get_peft_model

    from tuning_core_peft_gptq.lora import prepare_for_kbit_training

    prepare_for_kbit_training(model, gradient_checkpointing=False)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=args.target_modules, task_type="CAUSAL_LM")
    )
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, args.vocab, (args.batch, args.seq), generator=g).to(device)
    times = []
    for _ in range(args.steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--intermediate", type=int, default=1376)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--group_size", type=int, default=128)
    p.add_argument("--calib_batches", type=int, default=4)
    p.add_argument("--target_modules", nargs="+", default=["q_proj", "v_proj"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="compute dtype (default: float32 on CPU, bfloat16 on GPU)")
    p.add_argument("--variants", nargs="+", default=["lora", "gptq_lora", "qlora"])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (on a machine shared with other jobs, 1 avoids OpenMP oversubscription, "
        "which slowed the 4-bit unpacking 14x here)",
    )
    p.add_argument("--quick", action="store_true", help="tiny shapes for a smoke run")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.hidden, args.layers, args.heads, args.intermediate, args.vocab = 64, 2, 4, 128, 512
        args.batch, args.seq, args.steps, args.group_size, args.calib_batches = 2, 32, 2, 32, 2
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float32 if args.device == "cpu" else torch.bfloat16)
    shape = dict(
        hidden=args.hidden,
        layers=args.layers,
        intermediate=args.intermediate,
        vocab=args.vocab,
        batch=args.batch,
        seq=args.seq,
        device=args.device,
        dtype=str(dtype).replace("torch.", ""),
        torch_threads=torch.get_num_threads(),
    )

    with tempfile.TemporaryDirectory() as tmp:
        float_dir = build_float_model(Path(tmp) / "float", args)
        gptq_dir = Path(tmp) / "gptq"
        emit(
            bench="gptq_quantize",
            seconds=round(quantize(float_dir, gptq_dir, args), 2),
            group_size=args.group_size,
            desc_act=True,
            **shape,
        )

        # Weight memory: the decoder's linear weights, quantized vs float16 / float32.
        float32 = load_variant("lora", float_dir, gptq_dir, torch.float32, "cpu")
        lin32 = linear_weight_bytes(float32)
        fp16_bytes, fp32_bytes = lin32["float"] // 2, lin32["float"]
        emit(
            bench="weight_memory",
            variant="float32",
            linear_bytes=fp32_bytes,
            ratio_vs_fp16=2.0,
            model_bytes=model_bytes(float32),
            **shape,
        )
        emit(
            bench="weight_memory",
            variant="float16",
            linear_bytes=fp16_bytes,
            ratio_vs_fp16=1.0,
            model_bytes=model_bytes(float32) // 2,
            **shape,
        )
        del float32
        for name, key in (("gptq_lora", "gptq"), ("qlora", "bnb")):
            if name not in args.variants:
                continue
            model = load_variant(name, float_dir, gptq_dir, torch.float32, "cpu")
            lin = linear_weight_bytes(model)
            emit(
                bench="weight_memory",
                variant=f"{name}_4bit",
                linear_bytes=lin[key],
                ratio_vs_fp16=round(lin[key] / fp16_bytes, 4),
                ratio_vs_fp32=round(lin[key] / fp32_bytes, 4),
                quantized_layers=lin["count"],
                model_bytes=model_bytes(model),
                goal_ratio_vs_fp16=0.3,
                **shape,
            )
            del model

        # Step time, every variant on the same batch.
        baseline = None
        for name in args.variants:
            model = load_variant(name, float_dir, gptq_dir, dtype, args.device)
            times = step_times(model, args, args.device)
            median = statistics.median(times)
            baseline = baseline or (median if name == "lora" else None)
            emit(
                bench="train_step",
                variant=name,
                seconds_per_step=round(median, 4),
                tokens_per_second=round(args.batch * args.seq / median, 1),
                ratio_vs_lora=round(median / baseline, 3) if baseline else None,
                target_modules=args.target_modules,
                steps=len(times),
                **shape,
            )
            del model


if __name__ == "__main__":
    main()
