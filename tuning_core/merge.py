"""`tuning-core merge`: fold a LoRA adapter into its base and save a standalone model with its tokenizer."""

from __future__ import annotations

from pathlib import Path

from tuning_core.checkpoints import check_model_target, staged_model_dir
from tuning_core.errors import UserError, first_line
from tuning_core.infer import PROMPT_LEARNING_TYPES, load_for_inference, resolve_checkpoint


def merge_adapter(
    model: str,
    output_dir: str,
    base_model_name_or_path: str | None = None,
    plugin_manager=None,
    overwrite: bool = False,
) -> Path:
    """Merge and save; the result appears in ``output_dir`` only once completely written."""
    ckpt = resolve_checkpoint(model, base_model_name_or_path)
    if not ckpt.is_adapter:
        raise UserError(f"--model {model} is not an adapter (no adapter_config.json); there is nothing to merge")
    if ckpt.peft_type in PROMPT_LEARNING_TYPES:
        raise UserError(
            f"--model {model} is a {ckpt.peft_type} adapter: its virtual tokens cannot be merged "
            "into the weights; use 'tuning-core infer' with the adapter instead"
        )
    if (ckpt.adapter_config or {}).get("alora_invocation_tokens"):
        raise UserError(
            f"--model {model} is an Activated LoRA: it acts only after its invocation sequence, which "
            "merged weights cannot do; use 'tuning-core infer' with the adapter instead"
        )
    out = Path(output_dir)
    for other in (ckpt.path, Path(ckpt.base)):
        if out.exists() and out.resolve() == other.resolve():
            raise UserError(f"--output_dir {output_dir} is the adapter or base model directory; choose a new one")
    check_model_target(out, overwrite)

    # Merge in float32 for accuracy, then store in the base model's own dtype.
    loaded = load_for_inference(model, base_model_name_or_path, torch_dtype="float32", plugin_manager=plugin_manager)
    peft_model = loaded.model
    if getattr(peft_model.get_base_model(), "gptq_format", None) is not None:
        raise UserError(
            f"the base of {model} is a 4-bit GPTQ checkpoint: merging into packed weights is not "
            "supported; use 'tuning-core infer' with the adapter"
        )
    base_dtype = _stored_dtype(Path(ckpt.base))
    try:
        merged = peft_model.merge_and_unload()
    except (AttributeError, ValueError, NotImplementedError) as e:
        raise UserError(f"cannot merge the adapter in {model}: {first_line(e)}") from None
    if base_dtype is not None:
        merged = merged.to(base_dtype)

    with staged_model_dir(out) as staging:
        merged.save_pretrained(str(staging))
        loaded.tokenizer.save_pretrained(str(staging))
    return out


def _stored_dtype(base_dir: Path):
    """The dtype recorded in the base's config.json, or None (then the merged weights stay float32)."""
    import json

    import torch

    try:
        cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dtype = getattr(torch, str(cfg.get("dtype") or cfg.get("torch_dtype") or ""), None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="LoRA adapter directory to merge.")
    parser.add_argument("--output_dir", required=True, help="New directory for the merged model and tokenizer.")
    parser.add_argument(
        "--base_model_name_or_path",
        default=None,
        help="Base model to merge into, instead of the one recorded in adapter_config.json (the file is not modified).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace a non-empty --output_dir (atomically: the old model stays until the new one is complete).",
    )


def run(args) -> int:
    out = merge_adapter(args.model, args.output_dir, args.base_model_name_or_path, overwrite=args.overwrite)
    print(f"merged {args.model} into a standalone model at {out}")
    return 0
