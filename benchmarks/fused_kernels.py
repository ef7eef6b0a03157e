#!/usr/bin/env python
"""Forward+backward time and peak memory of the fused_ops kernels against eager torch (and Liger-Kernel
when it is installed), one JSON line per result.

    python benchmarks/fused_kernels.py                   # CPU quick sizes (a couple of minutes on 2 cores)
    python benchmarks/fused_kernels.py --size anchor     # the LM-head anchor: 4096 tokens, hidden 1024, vocab 128256
    python benchmarks/fused_kernels.py --size full       # issue sizes (hidden 4096, vocab 32k/128k, 4k tokens; GPU)
    python benchmarks/fused_kernels.py --only fused_linear_ce --size quick
    python benchmarks/fused_kernels.py --size arch   # per-architecture loss path (whole tiny model, labels) vs eager

Each line: bench, device, impl, shape, dtype, time_ms (median fwd+bwd), peak_mb (above the inputs),
saved_mb (held between forward and backward: output + saved activations), max_err (vs eager), and
for non-eager rows time_ratio (impl / eager, lower is faster), memory_reduction (eager peak / impl
peak) and saved_reduction (eager saved / impl saved), higher is better. Fused linear cross-entropy rows also give
unavoidable_mb (the gradients of hidden states and lm_head weight) and peak_over_unavoidable.

Peak memory. On CUDA: torch.cuda.max_memory_allocated above the level before the call. On CPU:
every allocation and free of the CPU allocator, which torch.profiler records (with its size) when
profile_memory=True; the running sum over one forward+backward, in time order, has its maximum at
the peak above the baseline. This counts every tensor torch allocates, including autograd's saved
tensors, gradients and temporaries inside operators, and is exact, unlike RSS sampling (the
allocator may keep or return pages, and sampling misses short peaks). Gradients of the previous
call are freed before the baseline.
Timing runs without the profiler.

On CPU only the torch paths run (Triton needs a GPU; its CPU interpreter is for tests, not speed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100


# --- measurement ------------------------------------------------------------------------------------


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(impl: Impl, device: str, repeats: int) -> float:
    """Median of ``repeats`` calls; the caller has already run it once (warm-up, kernel compilation)."""
    times = []
    for _ in range(repeats):
        impl.clear()
        _sync(device)
        t0 = time.perf_counter()
        impl.run()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def memory_mb(impl: Impl, device: str) -> tuple[float, float]:
    """(peak during forward+backward, held after the forward) in MiB above the inputs.

    "Held after the forward" is the output plus what autograd saved for backward: the activation
    memory a layer adds to a model until its backward runs.
    """
    impl.clear()  # the previous call's gradients are freed before the baseline is taken
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = impl.forward()
        torch.cuda.synchronize()
        held = torch.cuda.memory_allocated() - base
        impl.backward(out)
        del out
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20, held / 2**20
    box = []
    forward_events = cpu_memory_events(lambda: box.append(impl.forward()))
    held = sum(delta for _, delta in forward_events)
    backward_events = cpu_memory_events(lambda: impl.backward(box.pop()))
    level = peak = 0
    for _, delta in forward_events + backward_events:
        level += delta
        peak = max(peak, level)
    return peak / 2**20, held / 2**20


def cpu_memory_events(fn: Callable[[], None]) -> list[tuple[float, int]]:
    """(time, bytes) of every CPU allocation (+) and free (-) during ``fn``, as torch.profiler records them.

    The events' own "Total Allocated" counter is process-wide and carries over between profiler
    sessions, so callers sum the "Bytes" of a session's events instead.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    return sorted(
        (e["ts"], e["args"]["Bytes"])
        for e in events
        if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0
    )


def max_err(a, b) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=False))


# --- cases --------------------------------------------------------------------------------------------


@dataclass
class Impl:
    name: str
    forward: Callable[[], object]  # returns a loss (0-d) or output tensor(s)
    leaves: list  # inputs whose gradients backward fills

    def backward(self, out):
        if isinstance(out, tuple):
            torch.autograd.backward(list(out), [torch.ones_like(o) for o in out])
        elif out.dim() == 0:
            out.backward()
        else:
            out.backward(torch.ones_like(out))

    def run(self) -> tuple:
        """Forward + backward; returns (output, *grads) for the error check."""
        out = self.forward()
        self.backward(out)
        first = out[0] if isinstance(out, tuple) else out
        return (first.detach(), *[t.grad for t in self.leaves])

    def clear(self):
        for t in self.leaves:
            t.grad = None


def _leaf(*shape, device, dtype, scale=1.0):
    return (torch.randn(*shape, device=device, dtype=torch.float32) * scale).to(dtype).requires_grad_()


def _impl(name: str, leaves: list, forward) -> Impl:
    return Impl(name, forward, leaves)


def _liger(module_path: str, name: str):
    try:
        module = __import__(module_path, fromlist=[name])
        return getattr(module, name)
    except Exception:
        return None


def case_fused_linear_ce(device, dtype, tokens, hidden, vocab, ignored=0.3):
    from tuning_core_fused_ops.ops.fused_linear_ce import fused_linear_cross_entropy

    h = _leaf(tokens, hidden, device=device, dtype=dtype)
    w = _leaf(vocab, hidden, device=device, dtype=dtype, scale=hidden**-0.5)
    t = torch.randint(0, vocab, (tokens,), device=device)
    t[torch.rand(tokens, device=device) < ignored] = IGNORE
    impls = [
        _impl("eager", [h, w], lambda: F.cross_entropy((h @ w.t()).float(), t, ignore_index=IGNORE)),
        _impl("fused_torch", [h, w], lambda: fused_linear_cross_entropy(h, w, t, use_triton=False)),
    ]
    if device == "cuda":
        impls.append(_impl("fused_triton", [h, w], lambda: fused_linear_cross_entropy(h, w, t, use_triton=True)))
        liger = _liger("liger_kernel.transformers", "LigerFusedLinearCrossEntropyLoss")
        if liger is not None:
            loss = liger(ignore_index=IGNORE)
            impls.append(_impl("liger", [h, w], lambda: loss(w, h, t)))
    unavoidable = (h.numel() + w.numel()) * h.element_size() / 2**20
    shape = dict(tokens=tokens, hidden=hidden, vocab=vocab, ignored_frac=ignored)
    return impls, shape, dict(unavoidable_mb=round(unavoidable, 1))


def case_cross_entropy(device, dtype, tokens, vocab):
    from tuning_core_fused_ops.ops.cross_entropy import cross_entropy

    x = _leaf(tokens, vocab, device=device, dtype=dtype)
    t = torch.randint(0, vocab, (tokens,), device=device)
    t[::3] = IGNORE
    impls = [_impl("eager", [x], lambda: F.cross_entropy(x.float(), t, ignore_index=IGNORE))]
    if device == "cuda":
        impls.append(_impl("triton", [x], lambda: cross_entropy(x, t)))
        liger = _liger("liger_kernel.transformers", "LigerCrossEntropyLoss")
        if liger is not None:
            loss = liger(ignore_index=IGNORE)
            impls.append(_impl("liger", [x], lambda: loss(x, t)))
    return impls, dict(tokens=tokens, vocab=vocab), {}


def case_rms_norm(device, dtype, tokens, hidden):
    from tuning_core_fused_ops.ops.rms_norm import rms_norm

    x = _leaf(tokens, hidden, device=device, dtype=dtype)
    w = (torch.rand(hidden, device=device) + 0.5).to(dtype).requires_grad_()

    def eager():
        xf = x.float()
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)

    impls = [
        _impl("eager", [x, w], eager),
        _impl("fused_torch", [x, w], lambda: rms_norm(x, w, 1e-6, use_triton=False)),
    ]
    if device == "cuda":
        impls.append(_impl("triton", [x, w], lambda: rms_norm(x, w, 1e-6, use_triton=True)))
        liger = _liger("liger_kernel.transformers", "LigerRMSNorm")
        if liger is not None:
            mod = liger(hidden, eps=1e-6).to(device=device, dtype=dtype)
            mod.weight = w
            impls.append(_impl("liger", [x, w], lambda: mod(x)))
    return impls, dict(tokens=tokens, hidden=hidden), {}


def case_swiglu(device, dtype, tokens, intermediate):
    from tuning_core_fused_ops.ops.swiglu import swiglu

    a = _leaf(tokens, intermediate, device=device, dtype=dtype)
    b = _leaf(tokens, intermediate, device=device, dtype=dtype)
    impls = [
        _impl("eager", [a, b], lambda: F.silu(a) * b),
        _impl("fused_torch", [a, b], lambda: swiglu(a, b, use_triton=False)),
    ]
    if device == "cuda":
        impls.append(_impl("triton", [a, b], lambda: swiglu(a, b, use_triton=True)))
        liger = _liger("liger_kernel.ops.swiglu", "LigerSiLUMulFunction")
        if liger is not None:
            impls.append(_impl("liger", [a, b], lambda: liger.apply(a, b)))
    return impls, dict(tokens=tokens, intermediate=intermediate), {}


def case_rope(device, dtype, batch, q_heads, kv_heads, seq, head_dim):
    from tuning_core_fused_ops.ops.rope import rope_reference, rope_triton

    q = torch.randn(batch, seq, q_heads, head_dim, device=device, dtype=dtype).transpose(1, 2).requires_grad_()
    k = torch.randn(batch, seq, kv_heads, head_dim, device=device, dtype=dtype).transpose(1, 2).requires_grad_()
    pos = torch.arange(seq, device=device).repeat(batch, 1)
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    emb = torch.cat([pos[..., None] * inv] * 2, dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
    impls = [_impl("eager", [q, k], lambda: rope_reference(q, k, cos, sin))]
    if device == "cuda":
        impls.append(_impl("triton", [q, k], lambda: rope_triton(q, k, cos, sin)))
        liger = _liger("liger_kernel.transformers.rope", "liger_rotary_pos_emb")
        if liger is not None:
            impls.append(_impl("liger", [q, k], lambda: liger(q, k, cos, sin)))
    return impls, dict(batch=batch, q_heads=q_heads, kv_heads=kv_heads, seq=seq, head_dim=head_dim), {}


def case_lora_mlp(device, dtype, tokens, hidden, intermediate, rank):
    from tuning_core_fused_ops.ops.lora import BaseProjection, lora_mlp

    x = _leaf(tokens, hidden, device=device, dtype=dtype)

    def proj(d_in, d_out):
        w = (torch.randn(d_out, d_in, device=device) * d_in**-0.5).to(dtype)
        A = (torch.randn(rank, d_in, device=device) * 0.01).requires_grad_()  # adapters in float32, like PEFT
        B = (torch.randn(d_out, rank, device=device) * 0.01).requires_grad_()
        return w, A, B

    gate, up, down = proj(hidden, intermediate), proj(hidden, intermediate), proj(intermediate, hidden)
    leaves = [x] + [t for p in (gate, up, down) for t in p[1:]]

    def lin(inp, p):
        w, A, B = p
        return (F.linear(inp, w) + (inp.to(A.dtype) @ A.t() @ B.t()) * 2.0).to(inp.dtype)

    def fused():
        return lora_mlp(
            x,
            *[(BaseProjection.dense(p[0], None, 2.0), p[1], p[2]) for p in (gate, up, down)],
            use_triton=device == "cuda",
        )

    impls = [
        _impl("eager", leaves, lambda: lin(F.silu(lin(x, gate)) * lin(x, up), down)),
        _impl("fused_torch" if device == "cpu" else "fused", leaves, fused),
    ]
    return impls, dict(tokens=tokens, hidden=hidden, intermediate=intermediate, rank=rank), {}


ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "granitemoe", "qwen3_moe")


class _EagerModuleFunctions:
    """Puts the modeling modules' own functions back (the fused RoPE is process-wide) for the eager rows."""

    def __enter__(self):
        import importlib

        from tuning_core_fused_ops.patches.install import _FUNCTION_ORIGINALS

        self.swapped = []
        for (module_name, name), original in _FUNCTION_ORIGINALS.items():
            module = importlib.import_module(module_name)
            self.swapped.append((module, name, getattr(module, name)))
            setattr(module, name, original)

    def __exit__(self, *exc):
        for module, name, patched in self.swapped:
            setattr(module, name, patched)


def case_arch_loss(device, dtype, arch, batch, seq, hidden, layers, intermediate, vocab):
    """One training step's loss path (forward + backward of the whole tiny model with labels) per architecture:
    eager transformers against the same weights patched with every fused_ops kernel (--fast_kernels plus
    --fast_swiglu)."""
    import transformers

    from tuning_core.testing.tiny import tiny_config
    from tuning_core_fused_ops.patcher import patch_model
    from tuning_core_fused_ops.patches.install import unpatch
    from tuning_core_fused_ops.selection import Selection

    cfg = tiny_config(
        arch,
        vocab_size=vocab,
        hidden=hidden,
        layers=layers,
        heads=max(2, hidden // 64),
        intermediate=intermediate,
        max_positions=max(512, seq),
    )
    torch.manual_seed(0)
    eager = transformers.AutoModelForCausalLM.from_config(cfg).to(device=device, dtype=dtype).train()
    fused = transformers.AutoModelForCausalLM.from_config(cfg).to(device=device, dtype=dtype).train()
    fused.load_state_dict(eager.state_dict())
    ids = torch.randint(3, vocab, (batch, seq), device=device)
    labels = ids.clone()
    labels[:, : seq // 4] = IGNORE  # a prompt that is not trained on
    extra = {"output_router_logits": True} if arch in ("granitemoe", "qwen3_moe") else {}

    def eager_loss():
        with _EagerModuleFunctions():
            return eager(input_ids=ids, labels=labels, **extra).loss

    def fused_loss():
        return fused(input_ids=ids, labels=labels, **extra).loss

    impls = [_impl("eager", list(eager.parameters()), eager_loss)]
    backends = [("fused_torch", "torch")] + ([("fused_triton", "auto")] if device == "cuda" else [])
    for name, backend in backends:

        def run(backend=backend):
            unpatch(fused)
            patch_model(fused, Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, backend=backend))
            return fused_loss

        impls.append(_impl(name, list(fused.parameters()), _Lazy(run)))
    shape = dict(
        arch=arch,
        batch=batch,
        seq=seq,
        hidden=hidden,
        layers=layers,
        intermediate=intermediate,
        vocab=vocab,
        params_m=round(sum(p.numel() for p in eager.parameters()) / 1e6, 2),
    )
    return impls, shape, {}


class _Lazy:
    """A forward that patches the model for its backend on first use (so the two fused rows do not overlap)."""

    def __init__(self, setup):
        self.setup, self.fn = setup, None

    def __call__(self):
        if self.fn is None:
            self.fn = self.setup()
        return self.fn()


CASES = {
    "fused_linear_ce": case_fused_linear_ce,
    "cross_entropy": case_cross_entropy,
    "rms_norm": case_rms_norm,
    "swiglu": case_swiglu,
    "rope": case_rope,
    "lora_mlp": case_lora_mlp,
    "arch_loss": case_arch_loss,
}


def _arch_rows(**size):
    return [("arch_loss", dict(arch=a, **size)) for a in ARCHITECTURES]


# (bench, kwargs) per size and device kind. "anchor" is the LM-head row of shared/reference/performance-anchors.md.
SIZES = {
    "quick": {
        "cpu": [
            ("fused_linear_ce", dict(tokens=1024, hidden=256, vocab=32000)),
            ("fused_linear_ce", dict(tokens=1024, hidden=256, vocab=128256)),
            ("rms_norm", dict(tokens=4096, hidden=1024)),
            ("swiglu", dict(tokens=2048, intermediate=2816)),
            ("rope", dict(batch=2, q_heads=8, kv_heads=2, seq=512, head_dim=64)),
            ("lora_mlp", dict(tokens=1024, hidden=512, intermediate=1408, rank=16)),
        ]
        + _arch_rows(batch=4, seq=256, hidden=256, layers=2, intermediate=688, vocab=32000),
        "cuda": [
            ("fused_linear_ce", dict(tokens=2048, hidden=2048, vocab=32000)),
            ("cross_entropy", dict(tokens=2048, vocab=32000)),
            ("rms_norm", dict(tokens=4096, hidden=4096)),
            ("swiglu", dict(tokens=4096, intermediate=11008)),
            ("rope", dict(batch=2, q_heads=32, kv_heads=8, seq=2048, head_dim=128)),
            ("lora_mlp", dict(tokens=4096, hidden=4096, intermediate=11008, rank=16)),
        ]
        + _arch_rows(batch=4, seq=1024, hidden=1024, layers=4, intermediate=2816, vocab=128256),
    },
    "anchor": {
        "cpu": [("fused_linear_ce", dict(tokens=4096, hidden=1024, vocab=128256))],
        "cuda": [("fused_linear_ce", dict(tokens=4096, hidden=1024, vocab=128256))],
    },
    "full": {
        "cpu": [
            ("fused_linear_ce", dict(tokens=4096, hidden=1024, vocab=32000)),
            ("fused_linear_ce", dict(tokens=4096, hidden=1024, vocab=128256)),
            ("rms_norm", dict(tokens=8192, hidden=4096)),
            ("swiglu", dict(tokens=4096, intermediate=11008)),
            ("rope", dict(batch=4, q_heads=32, kv_heads=8, seq=1024, head_dim=128)),
            ("lora_mlp", dict(tokens=2048, hidden=2048, intermediate=5632, rank=16)),
        ],
        "cuda": [
            ("fused_linear_ce", dict(tokens=4096, hidden=4096, vocab=32000)),
            ("fused_linear_ce", dict(tokens=4096, hidden=4096, vocab=128256)),
            ("cross_entropy", dict(tokens=4096, vocab=128256)),
            ("rms_norm", dict(tokens=16384, hidden=4096)),
            ("swiglu", dict(tokens=16384, intermediate=14336)),
            ("rope", dict(batch=4, q_heads=32, kv_heads=8, seq=4096, head_dim=128)),
            ("lora_mlp", dict(tokens=8192, hidden=4096, intermediate=14336, rank=16)),
        ]
        + _arch_rows(batch=4, seq=2048, hidden=2048, layers=4, intermediate=5632, vocab=128256),
    },
    "arch": {  # only the per-architecture loss path, small enough for a shared CPU
        "cpu": _arch_rows(batch=4, seq=256, hidden=256, layers=2, intermediate=688, vocab=32000),
        "cuda": _arch_rows(batch=4, seq=1024, hidden=1024, layers=4, intermediate=2816, vocab=128256),
    },
}


def run_case(bench, kwargs, device, dtype, repeats):
    torch.manual_seed(0)
    impls, shape, extra = CASES[bench](device, dtype, **kwargs)
    results, reference = [], None
    for impl in impls:
        impl.clear()
        out = impl.run()  # also the warm-up of the timing below
        if reference is None:
            reference = out
        row = dict(bench=bench, device=device, impl=impl.name, **shape, dtype=str(dtype).replace("torch.", ""))
        row["max_err"] = float(f"{max_err(out, reference):.3g}")
        del out
        row["time_ms"] = round(time_ms(impl, device, repeats), 2)
        peak, held = memory_mb(impl, device)
        row["peak_mb"], row["saved_mb"] = round(peak, 1), round(held, 1)
        row.update(extra)
        results.append(row)
    eager = results[0]
    for row in results[1:]:
        row["time_ratio"] = round(row["time_ms"] / eager["time_ms"], 3)
        row["memory_reduction"] = round(eager["peak_mb"] / max(row["peak_mb"], 1e-9), 2)
        row["saved_reduction"] = round(eager["saved_mb"] / max(row["saved_mb"], 1e-9), 2)
    for row in results:
        if "unavoidable_mb" in row:
            row["peak_over_unavoidable"] = round(row["peak_mb"] / row["unavoidable_mb"], 2)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default=None,
        help="default: float32 on CPU, bfloat16 on CUDA",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 3 on CPU, 10 on GPU)")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET: the interpreter is for tests, its timings mean nothing", file=sys.stderr)
        return 2
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    dtype = getattr(torch, args.dtype or ("bfloat16" if device == "cuda" else "float32"))
    repeats = args.repeats or (10 if device == "cuda" else 3)
    only = {b for b in args.only.split(",") if b}
    for bench, kwargs in SIZES[args.size][device]:
        if only and bench not in only:
            continue
        for row in run_case(bench, kwargs, device, dtype, repeats):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
