"""`tuning-core quantize`: write a 4-bit GPTQ checkpoint with our GPTQ implementation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


def _group_size(v: str) -> int:
    n = int(v)
    if n != -1 and n <= 0:
        raise argparse.ArgumentTypeError(f"group size must be -1 (one group per row) or positive, got {v}")
    return n


def _positive_int(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v[:50]!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _damp(v: str) -> float:
    import math

    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {v[:50]!r}") from None
    if not math.isfinite(x) or not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {v[:50]}")
    return x


def add_arguments(parser) -> None:
    parser.add_argument("--model_name_or_path", required=True, help="Float checkpoint to quantize (local path).")
    parser.add_argument("--output_dir", required=True, help="Where the GPTQ checkpoint is written.")
    parser.add_argument("--bits", type=int, default=4, choices=[4], help="Bits per weight (4).")
    parser.add_argument(
        "--group_size",
        type=_group_size,
        default=128,
        help="Input features sharing one scale and zero point; -1 = one group per output row.",
    )
    parser.add_argument(
        "--desc_act",
        action="store_true",
        help="Quantize input features in order of decreasing activation (act-order); stored "
        "through g_idx. Usually more accurate.",
    )
    parser.add_argument("--sym", type=_bool, default=True, help="Symmetric quantization (zero point 8).")
    parser.add_argument(
        "--damp_percent", type=_damp, default=0.01, help="Hessian dampening, as a fraction of its mean diagonal."
    )
    parser.add_argument(
        "--true_sequential",
        type=_bool,
        default=True,
        help="Quantize the linears of a layer in stages, each on the outputs of the quantized ones before it.",
    )
    parser.add_argument(
        "--checkpoint_format",
        default="gptq",
        choices=["gptq", "gptq_v2"],
        help="gptq: zero points stored minus one, readable by every GPTQ loader; gptq_v2: as is.",
    )
    parser.add_argument(
        "--calibration_data",
        default=None,
        help="Calibration texts: a .jsonl (see --calibration_text_field), .json list or .txt "
        "file (one text a line). Default: the dataset bundled with tuning-core.",
    )
    parser.add_argument("--calibration_text_field", default="output", help="Field of a JSON record to use.")
    parser.add_argument("--num_samples", type=_positive_int, default=128, help="Calibration sequences.")
    parser.add_argument("--seq_len", type=_positive_int, default=512, help="Tokens per calibration sequence.")
    parser.add_argument(
        "--torch_dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="Dtype the model runs in while calibrating and that non-quantized weights are "
        "saved in (auto: the checkpoint's own).",
    )
    parser.add_argument("--trust_remote_code", action="store_true", help="Allow model code from the checkpoint.")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace a non-empty --output_dir (atomically: the old model stays until the new one is complete).",
    )


def read_texts(path: str | None, field: str) -> list[str]:
    from tuning_core.plugin_api import ConfigError  # bad input: one line, exit code 2

    if path is None:
        from tuning_core.plugin_api import bundled_dataset_path

        path = str(bundled_dataset_path())
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--calibration_data {path}: no such file")
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".txt":
        rows: list = [line for line in text.splitlines() if line.strip()]
    elif file.suffix == ".json":
        rows = json.loads(text)
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (json.JSONDecodeError, RecursionError) as e:
                    raise ConfigError(
                        f"--calibration_data {path}: line {number} is not valid JSON "
                        f"({getattr(e, 'msg', 'nested too deeply')})"
                    ) from None
    if not isinstance(rows, list):
        raise ConfigError(f"--calibration_data {path}: expected a JSON list of texts or records")
    texts = [r if isinstance(r, str) else r.get(field) if isinstance(r, dict) else None for r in rows]
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ConfigError(
            f"--calibration_data {path}: no texts (records need a string field '{field}'; see --calibration_text_field)"
        )
    return texts


def run(args) -> int:
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuning_core.plugin_api import UserError, check_model_target, staged_model_dir
    from tuning_core_peft_gptq.checkpoint import read_gptq_format
    from tuning_core_peft_gptq.quantizer import QuantizeOptions, calibration_batches, quantize_model, save_quantized

    if not Path(args.model_name_or_path).exists():
        raise UserError(f"--model_name_or_path {args.model_name_or_path}: no such directory")
    if read_gptq_format(args.model_name_or_path) is not None:
        raise UserError(f"{args.model_name_or_path} is already GPTQ-quantized")
    check_model_target(args.output_dir, args.overwrite)
    texts = read_texts(args.calibration_data, args.calibration_text_field)
    dtype = "auto" if args.torch_dtype == "auto" else getattr(torch, args.torch_dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        args.model_name_or_path, dtype=dtype, trust_remote_code=args.trust_remote_code
    ).to(device)
    opts = QuantizeOptions(
        group_size=args.group_size,
        desc_act=args.desc_act,
        sym=args.sym,
        damp_percent=args.damp_percent,
        true_sequential=args.true_sequential,
        checkpoint_format=args.checkpoint_format,
    )
    batches = calibration_batches(tokenizer, texts, args.num_samples, args.seq_len)
    results = quantize_model(model, batches, opts)
    with staged_model_dir(args.output_dir) as staging:
        save_quantized(model.cpu(), results, opts.format(), staging, tokenizer)
    print(
        f"wrote {opts.format().describe()} checkpoint with {len(results)} packed layers to {args.output_dir} "
        f"({sum(len(b) for b in batches)} calibration sequences, {time.perf_counter() - t0:.1f} s)"
    )
    return 0
