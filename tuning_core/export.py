"""`tuning-core export --vllm`: rewrite a LoRA adapter in the layout vLLM loads.

vLLM (fms-hf-tuning issue 414) rejects an adapter tensor that is not a LoRA
weight (``lora_A``/``lora_B``/``lora_embedding_A``/``lora_embedding_B``/LoRA
bias) on a module it can adapt; peft's trainable-token deltas and full
embedding copies are such tensors. Rows of tokens added in training go to
``new_embeddings.safetensors`` as ``input_embeddings``/``output_embeddings``,
the extra-vocabulary layout vLLM reads (as fms-hf-tuning's
post_process_vLLM_adapters_new_tokens writes it). Nothing in ``--model`` changes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tuning_core.errors import UserError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
NEW_EMBEDDINGS = "new_embeddings.safetensors"
EMBEDDING_MODULES = {"embed_tokens": "input_embeddings", "lm_head": "output_embeddings"}
INPUT_NAMES = ("embed_tokens", "wte", "word_embeddings", "embed_in")


def lora_weight_module(name: str) -> str | None:
    """The module a tensor name adapts, by vLLM's naming rules, or None if vLLM would reject the name."""
    parts = name.split(".")
    start = 2 if name.startswith("base_model.model.") else 0
    if len(parts) >= 3 and parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B"):
        return ".".join(parts[start:-2])
    if parts[-1] in ("lora_embedding_A", "lora_embedding_B"):
        return ".".join(parts[start:-1])
    if len(parts) >= 3 and parts[-1] == "bias" and parts[-2] == "lora_B":
        return ".".join(parts[start:-2])
    return None


def vllm_layout_problems(adapter_dir: str | Path, supported_modules: set[str]) -> list[str]:
    """Why vLLM would refuse ``adapter_dir``: tensor names it cannot parse, modules it cannot adapt, features
    its LoRA loader lacks, and new-embedding files it cannot read. Empty when it would load."""
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    problems = []
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')}: vLLM serves LoRA adapters only")
    if config.get("use_dora"):
        problems.append("DoRA: vLLM does not load DoRA adapters")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save {config['modules_to_save']}: vLLM loads no fully trained modules")
    if config.get("trainable_token_indices"):
        problems.append("trainable_token_indices: vLLM loads no trainable-token deltas")
    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), framework="pt") as f:
        for name in f.keys():
            module = lora_weight_module(name)
            if module is None:
                problems.append(f"{name}: not a LoRA weight")
            elif module.rpartition(".")[2] not in supported_modules | set(EMBEDDING_MODULES):
                problems.append(f"{name}: vLLM cannot adapt module {module.rpartition('.')[2]!r}")
    embeddings = adapter_dir / NEW_EMBEDDINGS
    if embeddings.is_file():
        with safe_open(str(embeddings), framework="pt") as f:
            for name in f.keys():
                if name not in EMBEDDING_MODULES.values():
                    problems.append(f"{NEW_EMBEDDINGS}: {name} is not one of {sorted(EMBEDDING_MODULES.values())}")
    return problems


def export_vllm(model: str, output_dir: str) -> Path:
    """Write the vLLM layout of the adapter in ``model`` to ``output_dir`` (a new directory)."""
    from safetensors.torch import load_file, save_file

    src, out = Path(model), Path(output_dir)
    if not (src / "adapter_config.json").is_file() or not (src / ADAPTER_WEIGHTS).is_file():
        raise UserError(
            f"--model {model}: not a LoRA adapter directory (needs adapter_config.json and {ADAPTER_WEIGHTS})"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--output_dir {output_dir} already exists and is not empty; choose a new directory")
    config = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise UserError(f"--model {model} is a {config.get('peft_type')} adapter: vLLM serves LoRA adapters only")
    if config.get("use_dora"):
        raise UserError(
            f"--model {model} is a DoRA adapter: vLLM does not load DoRA; retrain without --use_dora "
            "or merge it with 'tuning-core merge'"
        )
    saved = [m for m in (config.get("modules_to_save") or []) if m not in EMBEDDING_MODULES]
    if saved:
        raise UserError(
            f"--model {model} trains whole modules {saved} (modules_to_save), which vLLM cannot load; "
            "merge it with 'tuning-core merge' instead"
        )
    tensors = load_file(str(src / ADAPTER_WEIGHTS))
    base_vocab, vocab = _base_vocab_size(src, config), _tokenizer_size(src)
    new_rows, kept = {}, {}
    # Trainable-token deltas first: they hold the trained rows; the full embedding copies beside them do not.
    for name in sorted(tensors, key=lambda n: "trainable_tokens_delta" not in n):
        tensor = tensors[name]
        if lora_weight_module(name) is not None:
            kept[name] = tensor
            continue
        kind = _embedding_kind(name)
        if kind is None:
            raise UserError(
                f"--model {model}: tensor {name} is neither a LoRA weight nor an embedding; vLLM cannot load it"
            )
        if EMBEDDING_MODULES[kind] in new_rows:
            continue
        rows = _new_rows(name, tensor, config, base_vocab, model)
        if rows is not None and vocab is not None and base_vocab is not None:
            rows = rows[: max(vocab - base_vocab, 0)]  # rows padded for --embedding_size_multiple_of hold no token
        if rows is not None and rows.shape[0]:
            new_rows[EMBEDDING_MODULES[kind]] = rows.clone().contiguous()
    if "output_embeddings" in new_rows and "input_embeddings" not in new_rows:
        raise UserError(f"--model {model}: new output rows without input rows; vLLM needs both")

    staging = out.with_name(f".{out.name}.export-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        shutil.copytree(src, staging, ignore=shutil.ignore_patterns(ADAPTER_WEIGHTS, "adapter_model.bin", "*.pt"))
        save_file(kept, str(staging / ADAPTER_WEIGHTS))
        if new_rows:
            save_file(new_rows, str(staging / NEW_EMBEDDINGS))
        config["trainable_token_indices"] = None
        config["modules_to_save"] = None
        (staging / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _embedding_kind(name: str) -> str | None:
    if ".lm_head." in f".{name}" or name.startswith("lm_head"):
        return "lm_head"
    if any(f".{n}." in f".{name}" for n in INPUT_NAMES):
        return "embed_tokens"
    return None


def _new_rows(name: str, tensor, config: dict, base_vocab: int | None, model: str):
    """The rows of tokens added after the base vocabulary, from a trainable-token delta or a full embedding."""
    if "trainable_tokens_delta" in name:
        indices = config.get("trainable_token_indices")
        if isinstance(indices, dict):
            kind = _embedding_kind(name)
            indices = next((v for k, v in indices.items() if _embedding_kind(f"x.{k}.y") == kind), None)
        indices = list(indices or [])
        if base_vocab is None or indices != list(range(base_vocab, base_vocab + len(indices))):
            raise UserError(
                f"--model {model}: trainable_token_indices {indices} retrain rows of the base vocabulary "
                f"(size {base_vocab}); vLLM can only add rows for new tokens after it"
            )
        return tensor
    if base_vocab is None:
        raise UserError(
            f"--model {model}: cannot tell the base model's vocabulary size to split out new rows; "
            "its config.json is not reachable"
        )
    if tensor.shape[0] <= base_vocab:
        return None  # no new rows: nothing for vLLM to add
    return tensor[base_vocab:]


def _tokenizer_size(src: Path) -> int | None:
    if not any((src / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(str(src)))


def _base_vocab_size(src: Path, config: dict) -> int | None:
    base = config.get("base_model_name_or_path")
    try:
        cfg = json.loads((Path(base) / "config.json").read_text(encoding="utf-8")) if base else {}
    except (OSError, ValueError):
        return None
    size = cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")
    return int(size) if size else None


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="LoRA adapter directory to export (left unchanged).")
    parser.add_argument("--output_dir", required=True, help="New directory for the exported adapter.")
    parser.add_argument(
        "--vllm",
        action="store_true",
        required=True,
        help="Write vLLM's layout: only LoRA weights in adapter_model.safetensors, rows of added "
        "tokens in new_embeddings.safetensors.",
    )


def run(args) -> int:
    out = export_vllm(args.model, args.output_dir)
    extra = " with new_embeddings.safetensors" if (out / NEW_EMBEDDINGS).is_file() else ""
    print(f"exported {args.model} for vLLM to {out}{extra}")
    return 0
