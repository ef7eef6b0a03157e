"""Data processing throughput: examples/s per format, cold cache and cached, one JSON line per result.

    python benchmarks/data_processing.py                 # 100k examples per format (the issue's setting)
    python benchmarks/data_processing.py --examples 20000 --formats text_field input_output
    python benchmarks/data_processing.py --examples 20000 --formats --configs mixed chat input_output

``--configs`` runs the same data through ``--data_config_path`` files (fms-hf-tuning's handlers): "mixed" is
two datasets (input/output and text_field) interleaved by sampling 0.5/0.5, "chat" and "input_output" one
dataset with the tokenizing handler; compare each with its flag-path format to see a config's overhead.

Synthetic twitter-complaints-shaped records; a byte-level BPE tokenizer (Llama-3 style, vocab 8000) trained
offline on the same kind of text, so words are whole tokens as with a real tokenizer. The fms-hf-tuning 3.2.2
anchors (examples/s, same machine class) are printed beside each cold result.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

ANCHORS = {"text_field": 1286, "input_output": 3422, "formatter_template": 1276}
WORDS = (
    "the bank support internet phone order delivery refund still again never always broke late quick "
    "great awful thanks help waiting hours days week customer service app account card flight train "
    "package missing arrived charged twice cancelled reply email chat agent fixed slow fast"
).split()
LABELS = ["complaint", "no complaint"]


def tweet(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize()


def records(fmt: str, n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        text, label = tweet(rng), rng.choice(LABELS)
        if fmt == "text_field":
            yield {"output": f"### Text: {text}\n\n### Label: {label}"}
        elif fmt == "formatter_template":
            yield {"Tweet text": text, "ID": i, "text_label": label}
        elif fmt == "input_output":
            yield {"input": f"### Text: {text}\n\n### Label:", "output": label}
        elif fmt == "chat":
            yield {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}]}
        elif fmt == "pretokenized":
            ids = [rng.randrange(3, 500) for _ in range(rng.randint(16, 64))]
            yield {"input_ids": ids, "labels": [-100] * (len(ids) - 3) + ids[-3:]}


FLAGS = {
    "text_field": dict(dataset_text_field="output", response_template="\\n### Label:"),
    "formatter_template": dict(
        data_formatter_template="### Text: {{Tweet text}}\\n\\n### Label: {{text_label}}",
        response_template="\\n### Label:",
    ),
    "input_output": {},
    "pretokenized": {},
    "chat": dict(
        chat_template="{% for m in messages %}{{ bos_token if loop.first }}### {{ m['role'] }}: "
        "{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n"
        "{% endfor %}{% if add_generation_prompt %}### assistant: {% endif %}"
    ),
}


HANDLERS = {
    "input_output": {
        "name": "tokenize_and_apply_input_masking",
        "arguments": {
            "remove_columns": "all",
            "fn_kwargs": {"input_column_name": "input", "output_column_name": "output"},
        },
    },
    "chat": {
        "name": "tokenize_and_apply_chat_template_with_masking",
        "arguments": {"remove_columns": "all", "fn_kwargs": {"conversation_column": "messages"}},
    },
}


def config_file(kind: str, tmp: Path, n: int) -> tuple[Path, dict]:
    """A data config (and the flags it needs) over freshly written data."""
    import yaml

    def data(fmt, count, seed=0):
        path = tmp / f"cfg-{kind}-{fmt}.jsonl"
        with open(path, "w") as f:
            for r in records(fmt, count, seed):
                f.write(json.dumps(r) + "\n")
        return str(path)

    processor, flags = {"type": "default", "seed": 0}, {}
    if kind == "mixed":
        datasets = [
            {
                "name": "io",
                "data_paths": [data("input_output", n // 2)],
                "sampling": 0.5,
                "data_handlers": [HANDLERS["input_output"]],
            },
            {"name": "text", "data_paths": [data("text_field", n // 2, 1)], "sampling": 0.5},
        ]
        flags = FLAGS["text_field"]
    else:
        datasets = [{"name": kind, "data_paths": [data(kind, n)], "data_handlers": [HANDLERS[kind]]}]
        if kind == "chat":
            processor["chat_template"] = FLAGS["chat"]["chat_template"]
    path = tmp / f"{kind}.yaml"
    path.write_text(yaml.safe_dump({"dataprocessor": processor, "datasets": datasets}))
    return path, flags


def build_tokenizer(out_dir: Path, vocab_size: int = 8000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [r["output"] for r in records("text_field", 5000, seed=1)]
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out_dir)
    return fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument(
        "--formats", nargs="*", default=["text_field", "input_output", "formatter_template"], choices=list(FLAGS)
    )
    parser.add_argument(
        "--configs",
        nargs="*",
        default=[],
        choices=["mixed", "chat", "input_output"],
        help="Also process data configs (--data_config_path) of these kinds.",
    )
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import datasets  # noqa: F401  (import cost is not processing cost: pay it before timing)
    import pyarrow.parquet  # noqa: F401

    from tuning_core.data import DataArguments, prepare_datasets
    from tuning_core.plugins import get_plugin_manager

    get_plugin_manager()  # plugins load once per run, before the data; not processing cost either

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = build_tokenizer(tmp / "tok")
        runs = []
        for fmt in args.formats:
            data = tmp / f"{fmt}.jsonl"
            with open(data, "w") as f:
                for r in records(fmt, args.examples):
                    f.write(json.dumps(r) + "\n")
            runs.append((fmt, DataArguments(training_data_path=str(data), **FLAGS[fmt])))
        for kind in args.configs:
            path, flags = config_file(kind, tmp, args.examples)
            runs.append((f"config_{kind}", DataArguments(data_config_path=str(path), **flags)))
        for fmt, config in runs:
            os.environ["TUNING_CORE_CACHE"] = str(tmp / f"cache-{fmt}")
            for phase in ("cold", "cached"):
                start, cpu_start = time.perf_counter(), time.process_time()
                out = prepare_datasets(config, tokenizer)
                seconds = time.perf_counter() - start
                cpu_seconds = time.process_time() - cpu_start
                assert out.stats["cache_hit"] == (phase == "cached")
                result = {
                    "benchmark": "data_processing",
                    "format": fmt,
                    "cache": phase,
                    "examples": len(out.train),
                    "seconds": round(seconds, 3),
                    "cpu_seconds": round(cpu_seconds, 3),
                    "examples_per_s": round(len(out.train) / seconds),
                    "tokens": out.stats.get("num_tokens")
                    or sum(d["num_tokens"] for d in out.stats.get("datasets", {}).values()),
                    "cpus": os.cpu_count(),
                }
                if fmt.startswith("config_") and fmt[7:] in ANCHORS and phase == "cold":
                    result["fms_hf_tuning_examples_per_s"] = ANCHORS[fmt[7:]]
                    result["speedup_vs_fms"] = round(result["examples_per_s"] / ANCHORS[fmt[7:]], 1)
                if fmt in ANCHORS and phase == "cold":
                    result["fms_hf_tuning_examples_per_s"] = ANCHORS[fmt]
                    result["speedup_vs_fms"] = round(result["examples_per_s"] / ANCHORS[fmt], 1)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
