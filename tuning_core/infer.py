"""`tuning-core infer`: generate text with a tuned model (adapter on its base, or a full model).

The base model loads through the ``tuning_core_load_model`` hook with purpose
"infer", so a plugin (e.g. GPTQ) that knows the base's format takes over. A
``--base_model_name_or_path`` override is passed straight to the loader:
nothing on disk is rewritten (fms-hf-tuning patches and restores
adapter_config.json, which breaks on read-only storage and parallel runs).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_core.errors import UserError, first_line

ADAPTER_CONFIG = "adapter_config.json"
PROMPT_LEARNING_TYPES = {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING"}


@dataclass
class Checkpoint:
    """What ``--model`` points at, resolved without loading anything heavy."""

    path: Path
    base: str  # the model the weights go on (the checkpoint itself for a full model)
    tokenizer: str  # where the tokenizer comes from
    adapter_config: dict | None = None  # None for a full model

    @property
    def is_adapter(self) -> bool:
        return self.adapter_config is not None

    @property
    def peft_type(self) -> str | None:
        return (self.adapter_config or {}).get("peft_type")


@dataclass
class LoadedForInference:
    model: Any
    tokenizer: Any
    checkpoint: Checkpoint
    description: str


def resolve_checkpoint(model: str, base_model_name_or_path: str | None = None) -> Checkpoint:
    path = Path(model)
    if not path.is_dir():
        raise UserError(f"--model {model}: no such directory")
    has_tokenizer = any((path / f).is_file() for f in ("tokenizer_config.json", "tokenizer.json"))
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        if base_model_name_or_path:
            raise UserError(
                f"--base_model_name_or_path only applies to adapters, and {model} has no "
                f"{ADAPTER_CONFIG} (it is a full model)"
            )
        return Checkpoint(path=path, base=str(path), tokenizer=str(path))
    try:
        adapter_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {config_file}: {e}") from None
    if not isinstance(adapter_config, dict):
        raise UserError(f"{config_file} does not hold a JSON object")
    base = base_model_name_or_path or adapter_config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{config_file} records no base model; pass --base_model_name_or_path")
    if not Path(base).exists():
        if base_model_name_or_path:
            raise UserError(f"--base_model_name_or_path {base}: no such directory")
        raise UserError(
            f"the adapter in {model} was trained on '{base}', which does not exist here; pass "
            "--base_model_name_or_path with the base model's location (nothing on disk is changed)"
        )
    return Checkpoint(
        path=path, base=str(base), tokenizer=str(path) if has_tokenizer else str(base), adapter_config=adapter_config
    )


def load_for_inference(
    model: str, base_model_name_or_path: str | None = None, torch_dtype: str = "auto", plugin_manager=None
) -> LoadedForInference:
    """Load ``model`` (adapter + base, or a full model) ready for ``generate``."""
    from tuning_core.config import make_config
    from tuning_core.plugins import call_first, get_plugin_manager

    ckpt = resolve_checkpoint(model, base_model_name_or_path)
    pm = plugin_manager or get_plugin_manager()
    config = make_config(
        pm, model_name_or_path=ckpt.base, tokenizer_name_or_path=ckpt.tokenizer, torch_dtype=torch_dtype
    )
    loader, loaded = call_first(pm, "tuning_core_load_model", config=config, purpose="infer")
    if loaded is None:
        raise UserError(f"no plugin could load the model '{ckpt.base}'")
    model_obj, tokenizer = loaded.model, loaded.tokenizer
    description = f"{loaded.description or type(model_obj).__name__} (loaded by {loader})"
    if ckpt.is_adapter:
        from peft import PeftModel

        match_embedding_rows(model_obj, tokenizer, ckpt.path)
        try:
            model_obj = PeftModel.from_pretrained(model_obj, str(ckpt.path))
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise UserError(f"cannot load the adapter in {ckpt.path} onto '{ckpt.base}': {first_line(e)}") from None
        description += f" + {ckpt.peft_type or 'adapter'} from {ckpt.path}"
    if getattr(model_obj.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model_obj.config.pad_token_id = tokenizer.pad_token_id
    _to_device(model_obj)
    model_obj.eval()
    return LoadedForInference(model_obj, tokenizer, ckpt, description)


def match_embedding_rows(model, tokenizer, adapter_dir: Path) -> None:
    """Resize the base's embeddings to what the adapter was trained with.

    Training adds a pad token to Llama-style tokenizers and resizes the
    embeddings; peft then saves the (resized) embedding rows in the adapter.
    Loading those onto an unresized base fails on a shape mismatch.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    saved = _saved_embedding_rows(model, adapter_dir)
    target = saved if saved is not None else max(rows, len(tokenizer))
    if target != rows:
        model.resize_token_embeddings(target, mean_resizing=False)


def _saved_embedding_rows(model, adapter_dir: Path) -> int | None:
    names = []
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        for name, candidate in model.named_modules():
            if module is not None and candidate is module:
                names.append(name)
    weights = _adapter_tensor_shapes(adapter_dir)
    rows = [
        shape[0]
        for key, shape in weights.items()
        if "lora_" not in key and key.endswith("weight") and any(f"{n}." in key for n in names)
    ]
    return max(rows) if rows else None


def _adapter_tensor_shapes(adapter_dir: Path) -> dict[str, tuple]:
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    binary = adapter_dir / "adapter_model.bin"
    if binary.is_file():
        import torch

        return {k: tuple(v.shape) for k, v in torch.load(binary, map_location="cpu", weights_only=True).items()}
    return {}


def check_invocation(loaded: LoadedForInference, texts: list[str]) -> None:
    """An Activated LoRA acts only after its invocation sequence: an input without it would get the base model's
    answer under the adapter's name, so refuse it."""
    tokens = (loaded.checkpoint.adapter_config or {}).get("alora_invocation_tokens")
    if not tokens:
        return
    n = len(tokens)
    for i, text in enumerate(texts):
        ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not any(ids[j : j + n] == list(tokens) for j in range(len(ids) - n + 1)):
            invocation = loaded.tokenizer.decode(tokens)
            raise UserError(
                f"input {i + 1} lacks the aLoRA invocation {invocation!r} (tokens {list(tokens)}): "
                "this adapter only acts after it; append it to the input"
            )


def _to_device(model) -> None:
    import torch

    if getattr(model, "hf_device_map", None):  # placed by its loader (e.g. quantized); leave it
        return
    if torch.cuda.is_available():
        model.to("cuda")


def generate(model, tokenizer, texts: list[str], max_new_tokens: int = 20, batch_size: int = 8) -> list[str]:
    """Greedy generation in batches with left padding; each result is the input followed by the continuation."""
    import torch

    if tokenizer.pad_token is None:  # in memory only
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right, so padding must go left
    device = next(model.parameters()).device
    results: dict[int, str] = {}
    for batch in _batches(model, tokenizer, texts, batch_size):
        enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True).to(device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Position ids are not supported")  # see _batches
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        prompt_len = enc["input_ids"].shape[1]
        for row, i in enumerate(batch):
            keep = torch.cat([out[row, :prompt_len][enc["attention_mask"][row].bool()], out[row, prompt_len:]])
            results[i] = tokenizer.decode(keep, skip_special_tokens=True)
    return [results[i] for i in range(len(texts))]


def _batches(model, tokenizer, texts: list[str], batch_size: int) -> list[list[int]]:
    """Index batches. Prompt-tuned models get only equal-length texts together: peft ignores
    position ids there, so left padding would shift the positions of the real tokens."""
    peft_config = getattr(model, "active_peft_config", None)
    if not getattr(peft_config, "is_prompt_learning", False):
        return [list(range(s, min(s + batch_size, len(texts)))) for s in range(0, len(texts), batch_size)]
    by_length: dict[int, list[int]] = {}
    for i, text in enumerate(texts):
        by_length.setdefault(len(tokenizer(text)["input_ids"]), []).append(i)
    return [group[s : s + batch_size] for group in by_length.values() for s in range(0, len(group), batch_size)]


def read_texts(text: str | None, text_file: str | None) -> list[str]:
    if text is not None:
        return [text]
    path = Path(text_file)
    if not path.is_file():
        raise UserError(f"--text_file {text_file}: no such file")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise UserError(f"--text_file {text_file} has no non-empty lines")
    return texts


def write_json(path: str, data) -> None:
    """Write atomically, so an interrupted run never leaves a half-written results file."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UserError(f"--out_file {path}: directory {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="Tuned checkpoint: an adapter directory (LoRA or prompt tuning) or a full / merged model directory.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--text",
        help="One text to continue; \\n, \\t and \\\\ are read as a newline, a tab and "
        "a backslash, as in the template flags.",
    )
    group.add_argument("--text_file", help="A file with one text per line.")
    parser.add_argument("--max_new_tokens", type=_positive_int, default=20, help="Tokens to generate per text.")
    parser.add_argument(
        "--out_file", default="inference_result.json", help='JSON file for the results: a list of {"input", "output"}.'
    )
    parser.add_argument(
        "--base_model_name_or_path",
        default=None,
        help="Base model for an adapter, instead of the one recorded in its adapter_config.json "
        "(the file is not modified).",
    )
    parser.add_argument("--batch_size", type=_positive_int, default=8, help="Texts generated together.")
    parser.add_argument(
        "--torch_dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="Dtype to load the weights in (auto: float32 on CPU).",
    )


def _positive_int(value: str) -> int:
    import argparse

    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def run(args) -> int:
    from tuning_core.data.arguments import unescape

    # As the template flags: a \n typed in the shell is a newline (write \\n for a literal backslash-n).
    texts = read_texts(unescape(args.text), args.text_file)
    loaded = load_for_inference(args.model, args.base_model_name_or_path, args.torch_dtype)
    check_invocation(loaded, texts)
    print(f"loaded {loaded.description}")
    outputs = generate(loaded.model, loaded.tokenizer, texts, args.max_new_tokens, args.batch_size)
    write_json(args.out_file, [{"input": t, "output": o} for t, o in zip(texts, outputs, strict=False)])
    print(f"wrote {len(outputs)} result(s) to {args.out_file}")
    return 0
