"""tuning-core vs bare TRL SFTTrainer on the same LoRA job: real tokens per second and their ratio.

The job is performance-anchors.md's: an 8-layer, 512-wide Llama (vocab 8000), batch 8, LoRA r8 on q/v,
pretokenized data with ~55 % padding. Prints one JSON line per run and a summary line with the ratio.

    python benchmarks/core_overhead.py [--steps 8] [--repeats 2]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TUNING_CORE_PLUGINS", "")

from anchor import anchor_model, argv_flag, emit, padded_data, padding_fraction

WARMUP = 2


class StepMeter:
    """Counts real (unpadded) tokens per batch and times each optimizer step after the warm-up."""

    def __init__(self):
        self.tokens: list[int] = []
        self.seconds: list[float] = []
        self._t = None

    def wrap(self, collator):
        def collate(rows):
            batch = collator(rows)
            self.tokens.append(int(batch["attention_mask"].sum()))
            return batch

        return collate

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                meter._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                meter.seconds.append(time.perf_counter() - meter._t)

        return Timer()

    def tokens_per_second(self) -> float:
        # The loader prefetches one batch, so tokens[i] is step i's batch; skip the warm-up steps.
        steps = len(self.seconds)
        return sum(self.tokens[WARMUP:steps]) / sum(self.seconds[WARMUP:steps])


def run_bare_trl(model_dir: Path, data: Path, out: Path, steps: int, checkpointing: bool) -> float:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.add_special_tokens({"pad_token": "<pad>"})
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32", attn_implementation="sdpa")
    ds = datasets.load_dataset("json", data_files=str(data), split="train")
    meter = StepMeter()
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=1e-4,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
        gradient_checkpointing=checkpointing,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        bf16=False,
        fp16=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tok,
        data_collator=meter.wrap(DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)),
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        callbacks=[meter.callback()],
    )
    trainer.train()
    return meter.tokens_per_second()


def run_tuning_core(model_dir: Path, data: Path, out: Path, steps: int) -> float:
    from tuning_core.builtin.collator import PaddedCollator
    from tuning_core.pipeline import run_training
    from tuning_core.plugin_api import hookimpl
    from tuning_core.plugins import get_plugin_manager

    meter = StepMeter()

    class Meter:  # measured through the hooks, like any plugin
        @hookimpl
        def tuning_core_data_collator(self, tokenizer):
            return meter.wrap(PaddedCollator(tokenizer.pad_token_id))

        @hookimpl
        def tuning_core_trainer_callbacks(self):
            return [meter.callback()]

    pm = get_plugin_manager()
    plugin = Meter()
    pm.register(plugin, name="bench-meter")
    try:
        run_training(
            [
                "--model_name_or_path",
                model_dir,
                "--training_data_path",
                data,
                "--output_dir",
                out,
                "--peft_method",
                "lora",
                "--r",
                "8",
                "--lora_alpha",
                "16",
                "--target_modules",
                "q_proj",
                "v_proj",
                "--max_steps",
                str(steps),
                "--per_device_train_batch_size",
                "8",
                "--learning_rate",
                "1e-4",
                "--logging_steps",
                "1000",
                "--save_strategy",
                "no",
                "--disable_tqdm",
                "true",
                "--seed",
                "0",
                "--resume_from_checkpoint",
                "False",
            ]
        )
    finally:
        pm.unregister(plugin)
    return meter.tokens_per_second()


def main():
    steps = argv_flag("--steps", 8)
    repeats = argv_flag("--repeats", 2)
    work = Path(tempfile.mkdtemp(prefix="bench-core-"))
    model_dir = anchor_model(work / "model")
    data = padded_data(work / "data.jsonl")
    emit(bench="core_overhead", setting="data", padding_fraction=round(padding_fraction(data), 3))
    results: dict[str, list[float]] = {"bare_trl": [], "bare_trl_checkpointing": [], "tuning_core": []}
    for r in range(repeats):  # interleaved, so drift on a shared machine hits every system alike
        for system in results:
            out = work / f"{system}-{r}"
            if system == "tuning_core":
                tps = run_tuning_core(model_dir, data, out, steps)
            else:
                tps = run_bare_trl(model_dir, data, out, steps, checkpointing=system.endswith("checkpointing"))
            results[system].append(tps)
            emit(bench="core_overhead", system=system, repeat=r, real_tokens_per_s=round(tps, 1))
    med = {k: statistics.median(v) for k, v in results.items()}
    emit(
        bench="core_overhead",
        summary=True,
        steps=steps,
        repeats=repeats,
        **{f"{k}_tokens_per_s": round(v, 1) for k, v in med.items()},
        ratio_vs_bare_trl=round(med["tuning_core"] / med["bare_trl"], 3),
        ratio_vs_bare_trl_checkpointing=round(med["tuning_core"] / med["bare_trl_checkpointing"], 3),
        anchor_fms_hf_tuning_tokens_per_s=386,
    )


if __name__ == "__main__":
    main()
