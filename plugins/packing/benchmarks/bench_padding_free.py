"""Padded vs padding-free training, same data, same batches, in one run.

Trains a Llama (LoRA r8 on q/v, like the performance anchors) for one epoch
through the core's pipeline with the built-in padded collator and with
--padding_free, alternating (--repeats times), and keeps each mode's fastest
run. Data: pre-tokenized examples with long-tailed lengths and
completion-only labels, batch 8, so more than half of a padded batch is
padding. Prints one JSON line per run and a summary:

  ideal_ratio        padded tokens / real tokens: the speed-up if time were
                     proportional to tokens computed
  speedup            padded wall time / padding-free wall time
  fraction_of_ideal  speedup / ideal_ratio (goal >= 0.9)

    python plugins/packing/benchmarks/bench_padding_free.py                 # anchor scale: 8 layers, 512 wide
    python plugins/packing/benchmarks/bench_padding_free.py --scale small   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

SCALES = {
    "full": dict(hidden=512, layers=8, heads=8, vocab=8000, examples=800),
    "small": dict(hidden=128, layers=2, heads=4, vocab=2000, examples=160),
}


def emit(**row):
    print(json.dumps(row), flush=True)


def make_model(out: Path, hidden: int, layers: int, heads: int, vocab: int) -> None:
    import torch
    import transformers

    from tuning_core.testing.tiny import build_tokenizer, tiny_config

    tok = build_tokenizer(out)
    cfg = tiny_config(
        "llama",
        vocab_size=vocab,
        hidden=hidden,
        layers=layers,
        heads=heads,
        max_positions=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(out)


def make_data(path: Path, n: int, vocab: int, seed: int = 0) -> None:
    """Log-normal lengths (median 96, clipped 16..512); the first ~60 % of each example is an unlabelled prompt."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(96), 0.8, n)), 16, 512).astype(int)
    with open(path, "w") as f:
        for length in lengths:
            ids = rng.integers(3, vocab, length).tolist()
            prompt = int(length * 0.6)
            f.write(json.dumps({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]}) + "\n")


class TokenCounter:
    """Forward pre-hook: slots computed (input_ids.numel()) and real tokens, per training forward."""

    def __init__(self):
        self.slots = self.real = 0

    def __call__(self, module, args, kwargs):
        if not module.training:
            return
        ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        self.slots += ids.numel()
        self.real += int(mask.sum()) if mask is not None else ids.numel()


def train(model: Path, data: Path, out: Path, extra: list[str], batch: int) -> dict:
    from transformers import TrainerCallback, set_seed

    from tuning_core.pipeline import run_training
    from tuning_core.plugin_api import hookimpl
    from tuning_core.plugins import get_plugin_manager

    counter = TokenCounter()

    class CountTokens(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            model.register_forward_pre_hook(counter, with_kwargs=True)

    class BenchPlugin:  # registered like any plugin, for this run only
        @hookimpl
        def tuning_core_trainer_callbacks(self, config, run):
            return [CountTokens()]

    pm = get_plugin_manager()
    plugin = BenchPlugin()
    pm.register(plugin, name="bench")
    set_seed(0)  # LoRA weights are drawn before the Trainer seeds: give every run the same draw
    try:
        result = run_training(
            [
                "--model_name_or_path",
                str(model),
                "--training_data_path",
                str(data),
                "--output_dir",
                str(out),
                "--num_train_epochs",
                "1",
                "--per_device_train_batch_size",
                str(batch),
                "--learning_rate",
                "1e-3",
                "--peft_method",
                "lora",
                "--r",
                "8",
                "--lora_alpha",
                "16",
                "--target_modules",
                "q_proj",
                "v_proj",
                "--lora_dropout",
                "0",  # dropout would draw different masks for the two batch shapes
                "--save_strategy",
                "no",
                "--logging_steps",
                "10",
                "--seed",
                "0",
                "--disable_tqdm",
                "true",
                "--torch_dtype",
                "float32",
                "--max_seq_length",
                "1024",
                *extra,
            ]
        )
    finally:
        pm.unregister(plugin)
    wall = float(result.train_output.metrics["train_runtime"])
    return {
        "wall_s": round(wall, 3),
        "slots": counter.slots,
        "real_tokens": counter.real,
        "real_tokens_per_s": round(counter.real / wall, 1),
        "steps": result.trainer.state.global_step,
        "train_loss": round(float(result.train_output.training_loss), 5),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--examples", type=int, default=None, help="override the scale's number of examples")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="alternate padded / padding-free runs this many times; the fastest of each counts",
    )
    args = p.parse_args(argv)
    scale = dict(SCALES[args.scale])
    if args.examples:
        scale["examples"] = args.examples
    os.environ.setdefault("TUNING_CORE_PLUGINS", "packing")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Set OMP_NUM_THREADS=1 on a shared machine: contended OpenMP threads make CPU timings vary 5-10x.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_model(tmp / "model", scale["hidden"], scale["layers"], scale["heads"], scale["vocab"])
        make_data(tmp / "data.jsonl", scale["examples"], scale["vocab"])
        runs = {}
        for repeat in range(args.repeats):
            for mode, extra in (("padded", []), ("padding_free", ["--padding_free", "huggingface"])):
                run = train(tmp / "model", tmp / "data.jsonl", tmp / f"{mode}{repeat}", extra, args.batch_size)
                emit(
                    bench="padding_free", mode=mode, repeat=repeat, scale=args.scale, batch_size=args.batch_size, **run
                )
                if mode not in runs or run["wall_s"] < runs[mode]["wall_s"]:
                    runs[mode] = run
    padded, free = runs["padded"], runs["padding_free"]
    ideal = padded["slots"] / padded["real_tokens"]
    speedup = padded["wall_s"] / free["wall_s"]
    emit(
        bench="padding_free_summary",
        scale=args.scale,
        padding_fraction=round(1 - 1 / ideal, 4),
        ideal_ratio=round(ideal, 3),
        speedup=round(speedup, 3),
        fraction_of_ideal=round(speedup / ideal, 3),
        same_real_tokens=padded["real_tokens"] == free["real_tokens"],
        loss_difference=abs(padded["train_loss"] - free["train_loss"]),
    )


if __name__ == "__main__":
    main()
