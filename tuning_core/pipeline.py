"""The training pipeline: config -> hooks in order -> a tuned model. `tuning-core train` runs this."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning_core.banner import Banner
from tuning_core.checkpoints import (
    incomplete_checkpoints,
    is_complete,
    latest_complete_checkpoint,
    promote,
    staging_path,
)
from tuning_core.config import load_train_config
from tuning_core.errors import UserError
from tuning_core.plugin_api import RunContext
from tuning_core.plugins import call_all, call_first, get_plugin_manager
from tuning_core.preflight import preflight
from tuning_core.run_lock import output_dir_lock

log = logging.getLogger("tuning_core")


@dataclass
class TrainResult:
    config: Any
    trainer: Any = None
    resumed_from: str | None = None
    banner: list[str] = field(default_factory=list)
    train_output: Any = None


def run_training(argv: list[str]) -> TrainResult:
    from tuning_core.distributed import check_launch, prepare_launch

    launch_note = prepare_launch()  # before the TrainingArguments exist: they pick the process group
    pm = get_plugin_manager()
    config = load_train_config([str(a) for a in argv], pm)
    check_launch(config.training_args)  # N processes asked for, fewer training together: stop now
    pm.hook.tuning_core_validate_config(config=config)
    preflight(config)  # writable folders, data files, settings that do nothing: before anything heavy
    targs = config.training_args
    with output_dir_lock(targs.output_dir, enabled=targs.process_index == 0):
        if config.has("do_dataprocessing_only") and config.do_dataprocessing_only:
            return _process_data_only(config)
        run = RunContext(output_dir=targs.output_dir, is_main_process=targs.process_index == 0)
        banner = Banner()
        prepared = prepare_model(config, pm, run, banner)
        trainer = build_trainer(config, pm, run, banner, prepared)
        resume = describe_run(trainer, banner, launch_note)
        if run.is_main_process:
            banner.print()
        result = TrainResult(config=config, trainer=trainer, resumed_from=resume, banner=banner.lines)
        result.train_output = trainer.train(resume_from_checkpoint=resume)
        if config.save_model_dir:
            save_final_model(trainer, config.save_model_dir)
        return result


@dataclass
class PreparedModel:
    model: Any
    tokenizer: Any
    data: Any
    loss_replaced: bool = False


def prepare_model(config, pm, run: RunContext, banner: Banner) -> PreparedModel:
    """Load the model and data, then let plugins augment (PEFT) and patch (kernels) the model."""
    from transformers import set_seed

    # Before anything random (new embedding rows, LoRA / prompt-tuning init): --seed then fixes them, and every
    # rank of a multi-process run starts from the same weights. The Trainer seeds again itself, too late for these.
    set_seed(config.training_args.seed)
    t0 = time.perf_counter()
    loader, loaded = call_first(pm, "tuning_core_load_model", config=config, purpose="train")
    run.timings["model_load_seconds"] = time.perf_counter() - t0
    banner.add(loader, f"loaded model: {loaded.description}")
    model, tokenizer = loaded.model, loaded.tokenizer
    from tuning_core.builtin.tokens import grow_tokenizer

    grown = grow_tokenizer(config, model, tokenizer)  # before the data: new tokens must tokenize as one
    if grown:
        banner.add("builtin.tokens", grown)
    if ensure_pad_token(model, tokenizer):
        banner.add(
            "core",
            f"pad token {tokenizer.pad_token!r} (id {tokenizer.pad_token_id}); "
            f"embeddings {model.get_input_embeddings().weight.shape[0]} rows",
        )

    t0 = time.perf_counter()
    from tuning_core.data import prepare_datasets

    data = prepare_datasets(config, tokenizer)
    run.timings["data_preprocessing_seconds"] = time.perf_counter() - t0
    banner.add("builtin.data", _data_line(data))

    augmenter, model = call_first(pm, "tuning_core_augment_model", config=config, model=model, tokenizer=tokenizer)
    banner.add(augmenter, f"peft_method {config.peft_method}: {_trainable(model)}")
    loss_replaced = False
    for name, report in call_all(pm, "tuning_core_patch_model", config=config, model=model):
        loss_replaced |= report.replaces_loss
        for line in report.lines() or ["(nothing replaced)"]:
            banner.add(name, line)
    return PreparedModel(model, tokenizer, data, loss_replaced)


def build_trainer(config, pm, run: RunContext, banner: Banner, prepared: PreparedModel):
    """The collator, sampler and callbacks plugins provide, around our TuningTrainer."""
    model, tokenizer, data, targs = prepared.model, prepared.tokenizer, prepared.data, config.training_args
    collator_by, collator = call_first(pm, "tuning_core_data_collator", config=config, tokenizer=tokenizer, model=model)
    banner.add(collator_by, f"collator {type(collator).__name__}")
    sampler_by, spec = call_first(
        pm, "tuning_core_train_sampler", config=config, dataset=data.train, training_args=targs
    )
    if spec is not None:
        banner.add(sampler_by, f"{spec.kind} {spec.description or type(spec.sampler).__name__}")
    callbacks = []
    for name, cbs in call_all(pm, "tuning_core_trainer_callbacks", config=config, run=run):
        callbacks.extend(cbs)
        if cbs:
            banner.add(name, "callbacks " + ", ".join(type(cb).__name__ for cb in cbs))
    for note in run.notes:
        banner.add("note", note)

    from tuning_core.tuning_trainer import TuningTrainer

    trainer = TuningTrainer(
        model=model,
        args=targs,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=callbacks,
        sampler_spec=spec,
        loss_replaced_by_plugin=prepared.loss_replaced,
        reduce_loss_sum=config.enable_reduce_loss_sum,
    )
    banner.add(
        "core",
        "loss: LM head on trained positions only"
        if trainer.trained_positions_only
        else "loss: the model's own forward",
    )
    if config.enable_reduce_loss_sum:
        banner.add("core", "loss: summed over tokens (--enable_reduce_loss_sum), divided by gradient accumulation")
    return trainer


def describe_run(trainer, banner: Banner, launch_note: str | None) -> str | None:
    """The launch and resume lines of the banner; returns the checkpoint to resume from, if any."""
    from tuning_core.distributed import describe_launch

    for line in ([launch_note] if launch_note else []) + describe_launch(trainer):
        banner.add("core", line)
    targs = trainer.args
    resume = resolve_resume(targs.resume_from_checkpoint, targs.output_dir)
    if resume:
        banner.add("core", f"resuming from {resume}")
    return resume


def _data_line(data) -> str:
    stats = data.stats
    extra = f", {stats['num_truncated']} truncated" if stats.get("num_truncated") else ""
    evals = f", {len(data.eval)} validation" if data.eval is not None else ""
    streamed = ", streamed" if stats.get("streaming") else ""
    count = len(data.train) if hasattr(data.train, "__len__") else stats.get("num_examples", "?")
    return f"data format {stats.get('format')}: {count} training examples{evals}{extra}{streamed}"


def _trainable(model) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{trainable:,} of {total:,} parameters trainable ({100 * trainable / max(total, 1):.2f} %)"


def ensure_pad_token(model, tokenizer) -> bool:
    """Give a pad-less tokenizer (Llama's) a pad token. An existing special token is reused (padding is never
    trained: labels there are -100), so the embeddings keep their size and a LoRA adapter holds only LoRA
    weights (vLLM rejects adapters with embedding rows). `<pad>` is added, with a resize, only as a last resort."""
    if tokenizer.pad_token is not None:
        return False
    from tuning_core.builtin.tokens import existing_pad_token

    pad = existing_pad_token(tokenizer)
    if pad is not None:
        tokenizer.pad_token = pad
    else:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return True


def resolve_resume(value: Any, output_dir: str) -> str | None:
    """fms-hf-tuning's rule: resume from output_dir's latest checkpoint unless told False, or from a path."""
    text = "" if value is None else str(value).strip()
    for broken in incomplete_checkpoints(output_dir):
        log.warning("ignoring %s: its save did not finish", broken)
    if text.lower() == "false":
        return None
    if text == "" or text.lower() == "true":
        latest = latest_complete_checkpoint(output_dir)
        if latest is None and text.lower() == "true":
            raise UserError(f"--resume_from_checkpoint True: no complete checkpoint in {output_dir}")
        return str(latest) if latest else None
    path = Path(text)
    if not path.is_dir():
        raise UserError(f"--resume_from_checkpoint {text}: no such checkpoint directory")
    if not is_complete(path):
        raise UserError(f"--resume_from_checkpoint {text}: that checkpoint's save did not finish")
    return str(path)


def save_final_model(trainer, save_model_dir: str) -> None:
    """All ranks take part (FSDP gathers weights); rank 0 promotes the finished directory."""
    import shutil

    staging = staging_path(save_model_dir)
    if trainer.args.should_save and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    from tuning_core.distributed import prepare_final_save

    prepare_final_save(trainer)  # FSDP: full weights in save_model_dir even when checkpoints are sharded
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        promote(staging, save_model_dir)


def _process_data_only(config) -> TrainResult:
    from tuning_core.builtin.model_loader import load_tokenizer
    from tuning_core.data import prepare_datasets, save_processed

    tokenizer = load_tokenizer(config)
    data = prepare_datasets(config, tokenizer)
    save_processed(
        data, config.training_args.output_dir, config.num_train_dataset_shards, config.num_eval_dataset_shards
    )
    print(f"wrote {_data_line(data)} to {Path(config.training_args.output_dir) / 'train_dataset'}")
    return TrainResult(config=config)
