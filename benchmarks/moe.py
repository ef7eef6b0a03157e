#!/usr/bin/env python
"""Forward+backward time and peak memory of a Mixtral-shaped MoE layer: --fast_moe's scatter/gather
expert MLP against transformers' own MoE block, one JSON line per result.

    python benchmarks/moe.py                       # 8 experts, top-2, hidden 1024, intermediate 3584, 4096 tokens
    python benchmarks/moe.py --intermediate 1024 --tokens 1024 --repeats 2    # a quicker look

The layer is transformers' MixtralSparseMoeBlock (router + experts). Rows:
    transformers_grouped_mm  transformers 5's default experts implementation (sort + grouped matmul)
    transformers_eager       transformers' per-expert loop
    fast_moe_torch           the block with --fast_moe's experts forward, torch path (the CPU path)
    fast_moe_triton          the same with the Triton grouped kernels (CUDA only)
Fields as in benchmarks/fused_kernels.py (same measurement code):
time_ms (median fwd+bwd over round-robin rounds), peak_mb (above the
inputs; on CPU from torch.profiler's allocation events), saved_mb (held between forward and backward),
max_err (vs the first row: output, input and parameter gradients); for the other rows time_ratio
(impl / transformers_grouped_mm, lower is faster), speedup (its inverse), memory_reduction and
saved_reduction (grouped_mm / impl, higher is better), and the same against eager (*_vs_eager).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# benchmarks/fused_kernels.py would shadow the `kernels` package transformers probes for: keep this folder off
# sys.path and load the shared measurement code (the kernel benchmarks') under another name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_kernels = _load("_bench_kernels", "kernels.py")
Impl, max_err, memory_mb, time_ms = _kernels.Impl, _kernels.max_err, _kernels.memory_mb, _kernels.time_ms
emit = _load("_bench_common", "common.py").emit


def build_block(hidden, intermediate, experts, top_k, implementation, device, dtype, seed=0):
    import transformers
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = transformers.MixtralConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_local_experts=experts, num_experts_per_tok=top_k
    )
    cfg._experts_implementation = implementation
    torch.manual_seed(seed)
    block = MixtralSparseMoeBlock(cfg)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, hidden**-0.5)
    return block.to(device=device, dtype=dtype)


def fast(block, use_triton):
    from tuning_core_fused_ops.patches.install import set_forward
    from tuning_core_fused_ops.patches.moe import LABEL, experts_forward

    set_forward(block.experts, experts_forward(block.experts, use_triton), LABEL)
    return block


def impls(args, device, dtype):
    torch.manual_seed(1)
    x = (torch.randn(1, args.tokens, args.hidden, device=device) * 0.5).to(dtype).requires_grad_()
    spec = (args.hidden, args.intermediate, args.experts, args.top_k)
    blocks = [
        ("transformers_grouped_mm", build_block(*spec, "grouped_mm", device, dtype)),
        ("transformers_eager", build_block(*spec, "eager", device, dtype)),
        ("fast_moe_torch", fast(build_block(*spec, "eager", device, dtype), use_triton=False)),
    ]
    if device == "cuda":
        blocks.append(("fast_moe_triton", fast(build_block(*spec, "eager", device, dtype), use_triton=True)))
    out = []
    for name, block in blocks:
        leaves = [x] + list(block.parameters())
        out.append(Impl(name, (lambda b=block: b(x)), leaves))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=3584, help="Mixtral's 3.5 x hidden")
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top_k", type=int, default=2)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16"], default=None, help="default: float32 on CPU, bfloat16 on CUDA"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 3 on CPU, 10 on GPU)")
    parser.add_argument("--only", default="", help="comma-separated impl names (the first listed is the baseline)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET: the interpreter is for tests, its timings mean nothing", file=sys.stderr)
        return 2
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    dtype = getattr(torch, args.dtype or ("bfloat16" if device == "cuda" else "float32"))
    repeats = args.repeats or (10 if device == "cuda" else 3)
    only = [n for n in args.only.split(",") if n]
    chosen = [impl for impl in impls(args, device, dtype) if not only or impl.name in only]
    rows, reference = [], None
    for impl in chosen:
        impl.clear()
        result = impl.run()  # warm-up, and the values for the error check
        reference = reference or result
        row = dict(
            bench="moe_layer",
            device=device,
            impl=impl.name,
            tokens=args.tokens,
            hidden=args.hidden,
            intermediate=args.intermediate,
            experts=args.experts,
            top_k=args.top_k,
            dtype=str(dtype).replace("torch.", ""),
            threads=torch.get_num_threads(),
            repeats=repeats,
        )
        row["max_err"] = float(f"{max_err(result, reference):.3g}")
        del result
        peak, held = memory_mb(impl, device)
        row["peak_mb"], row["saved_mb"] = round(peak, 1), round(held, 1)
        impl.clear()
        rows.append(row)
    # Timed round-robin (one call of each per round, median over rounds): load from other processes on a
    # shared machine then hits every implementation alike.
    times = {impl.name: [] for impl in chosen}
    for _ in range(repeats):
        for impl in chosen:
            times[impl.name].append(time_ms(impl, device, 1))
    for row in rows:
        row["time_ms"] = round(statistics.median(times[row["impl"]]), 1)
    by_name = {r["impl"]: r for r in rows}
    for base_name, suffix in ((rows[0]["impl"], ""), ("transformers_eager", "_vs_eager")):
        base = by_name.get(base_name)
        if base is None:
            continue
        for row in rows:
            if row is base or row["impl"].startswith("transformers"):
                continue
            row["time_ratio" + suffix] = round(row["time_ms"] / base["time_ms"], 3)
            row["speedup" + suffix] = round(base["time_ms"] / row["time_ms"], 2)
            row["memory_reduction" + suffix] = round(base["peak_mb"] / max(row["peak_mb"], 1e-9), 2)
            row["saved_reduction" + suffix] = round(base["saved_mb"] / max(row["saved_mb"], 1e-9), 2)
    for row in rows:
        emit(**row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
