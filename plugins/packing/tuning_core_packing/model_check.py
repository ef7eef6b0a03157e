"""Make a model safe for padding-free batches, or refuse it.

Two things must hold. The KV cache must be off during training: transformers
only looks for packed position_ids when no cache object exists, and with
``use_cache=True`` it builds one and silently lets examples attend to each
other. And the model's attention must actually honour the packing: recurrent
models (Mamba, RWKV), custom attention functions, or remote code may not.
The second is checked by behaviour, not by a list of names: a few short
random sequences run packed in one row must give the same logits as run one
by one.
"""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, PatchReport
from tuning_core_packing.collator import PaddingFreeCollator
from tuning_core_packing.packed_sdpa import use_packed_sdpa

# Equal lengths so the separate runs form one unpadded batch: two forwards in all (each new shape
# costs a compilation with flex_attention).
PROBE_LENGTH, PROBE_EXAMPLES = 7, 3
# Allowed max |packed - separate| logits difference, relative to the largest |logit|.
# A leak across examples moves logits by a large fraction of their scale.
REL_TOLERANCE = {"float32": 1e-3, "float64": 1e-6}
REL_TOLERANCE_LOW_PRECISION = 5e-2


def _configs(model):
    """Every transformers config reachable from the model (PEFT wrappers, text sub-configs)."""
    seen, out = set(), []
    for module in model.modules():
        cfg = getattr(module, "config", None)
        for c in (cfg, getattr(cfg, "text_config", None)):
            if c is not None and hasattr(c, "use_cache") and id(c) not in seen:
                seen.add(id(c))
                out.append(c)
    return out


def disable_cache(model) -> int:
    """Set use_cache=False on every config of the model; returns how many were on."""
    changed = 0
    for cfg in _configs(model):
        if cfg.use_cache:
            cfg.use_cache = False
            changed += 1
    return changed


def _attn_implementation(model) -> str:
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "_attn_implementation", None) or "unknown")


def _is_partitioned(model) -> bool:
    """DeepSpeed ZeRO-3 shards parameters at load; a forward outside its engine cannot run."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def probe_packed_attention(model, collator: PaddingFreeCollator | None = None) -> float:
    """Max |packed - separate| logits over the probe, relative to the logits' scale. Raises ConfigError on failure."""
    import torch

    collator = collator or PaddingFreeCollator()
    emb = model.get_input_embeddings()
    vocab = int(emb.weight.shape[0])
    device = emb.weight.device
    gen = torch.Generator().manual_seed(1234)
    low = min(4, vocab - 1)
    seqs = torch.randint(low, vocab, (PROBE_EXAMPLES, PROBE_LENGTH), generator=gen)
    batch = collator([{"input_ids": s, "labels": s} for s in seqs])
    batch.pop("labels")
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(**batch, use_cache=False).logits[0].float()
            alone = model(input_ids=seqs.to(device), use_cache=False).logits.float()
    except Exception as e:
        raise ConfigError(
            f"--padding_free: {type(model).__name__} (attention {_attn_implementation(model)}) cannot run a "
            f"padding-free batch: {type(e).__name__}: {e}"
        ) from None
    finally:
        model.train(was_training)
    separate = alone.reshape(-1, alone.shape[-1])
    scale = separate.abs().max().clamp_min(1e-6)
    return float((packed - separate).abs().max() / scale)


def check_packed_attention(model) -> float:
    """Refuse (ConfigError) a model whose attention crosses example boundaries in a padding-free row."""
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    tol = REL_TOLERANCE.get(dtype, REL_TOLERANCE_LOW_PRECISION)
    err = probe_packed_attention(model)
    if err > tol:
        raise ConfigError(
            f"--padding_free: {type(model).__name__} with attention '{_attn_implementation(model)}' does not keep "
            f"examples apart in a padding-free row (packed logits differ from separate ones by {err:.2g} of their "
            f"scale, allowed {tol:g}), so examples would attend to each other. Use a transformer with sdpa, eager, "
            f"flex_attention or flash_attention_2 attention, or train without --padding_free."
        )
    return err


def prepare_model(model, per_example_sdpa: bool = True) -> PatchReport:
    report = PatchReport(plugin="packing")
    turned_off = disable_cache(model)
    if turned_off:
        report.notes.append(f"use_cache=False on {turned_off} config(s): packed position_ids need no KV cache")
    if per_example_sdpa and use_packed_sdpa(model):
        report.replaced["sdpa -> sdpa per example in padding-free rows"] = 1
    if _is_partitioned(model):
        report.notes.append("padding-free check skipped: parameters are partitioned (ZeRO-3)")
        return report
    err = check_packed_attention(model)
    report.notes.append(
        f"padding-free: attention '{_attn_implementation(model)}' keeps examples apart (probe difference {err:.1e})"
    )
    return report
