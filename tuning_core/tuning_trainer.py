"""The trainer: TRL's SFTTrainer with our loss path, sampler hook and complete-or-absent checkpoints."""

from __future__ import annotations

import os

from torch.utils.data import DataLoader
from transformers import Trainer
from trl import SFTTrainer

from tuning_core.checkpoints import begin_save, latest_complete_checkpoint, mark_complete, rotate
from tuning_core.errors import UserError
from tuning_core.loss import restrict_to_trained_positions, supports_trained_positions


class TuningTrainer(SFTTrainer):
    """SFTTrainer, with three deliberate changes (and fms-hf-tuning's optional sum-reduced loss).

    * Loss: the model's own causal-LM loss, with the LM head run only on trained
      positions (tuning_core/loss.py), or whatever a patch plugin installs (e.g. a
      fused linear cross-entropy). TRL 1.16 always computes it through its chunked
      log-prob LM head, which costs ~40 % of a CPU step on small models; see
      benchmarks/core_overhead.py.
    * Sampling: a plugin's SamplerSpec replaces the default sampler.
    * Checkpoints get a completion marker, written last, so an interrupted save
      is never resumed from; a save into an existing checkpoint drops the old marker
      first, and rotation (save_total_limit) runs only after the new marker.
    """

    def __init__(self, *args, sampler_spec=None, loss_replaced_by_plugin=False, reduce_loss_sum=False, **kwargs):
        self.sampler_spec = sampler_spec
        model = kwargs.get("model")
        trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad} if model else {}
        super().__init__(*args, **kwargs)
        # TRL casts the adapters of quantized (bitsandbytes) bases to bf16 even on a float32 CPU run: undo it.
        for name, param in self.model.named_parameters():
            if name in trainable and param.dtype != trainable[name]:
                param.data = param.data.to(trainable[name])
        # A plugin that installs its own loss (e.g. fused linear cross-entropy) gets the plain forward.
        self.trained_positions_only = not loss_replaced_by_plugin and supports_trained_positions(self.model)
        # --enable_reduce_loss_sum (fms-hf-tuning's SumLossSFTTrainer): a micro-batch's loss is the sum of its
        # tokens' cross-entropy; the Trainer then divides only by gradient accumulation, and DDP averages ranks.
        self.reduce_loss_sum = reduce_loss_sum
        if reduce_loss_sum:
            self.model_accepts_loss_kwargs = False
            self.loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs["use_cache"] = False
        if self.trained_positions_only and not return_outputs and "labels" in inputs:
            inputs = restrict_to_trained_positions(inputs)
        if self.reduce_loss_sum and "labels" in inputs:
            # The model's loss sums over tokens and divides by num_items_in_batch: 1 leaves the plain sum.
            return Trainer.compute_loss(
                self, model, {**inputs, "num_items_in_batch": 1}, return_outputs=return_outputs, num_items_in_batch=None
            )
        return Trainer.compute_loss(
            self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        return Trainer.prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def _get_train_sampler(self, *args, **kwargs):
        spec = self.sampler_spec
        if spec is not None and spec.kind == "sampler":
            return spec.sampler
        return super()._get_train_sampler(*args, **kwargs)

    def get_train_dataloader(self):
        spec = self.sampler_spec
        if spec is None or (spec.kind == "sampler" and not spec.per_rank):
            return super().get_train_dataloader()  # Trainer batches, and accelerate shards, the plugin's sampler
        if spec.kind == "batch_sampler":
            batching = dict(batch_sampler=spec.sampler)
        else:
            batching = dict(
                sampler=spec.sampler, batch_size=self._train_batch_size, drop_last=self.args.dataloader_drop_last
            )
        loader = EpochAwareLoader(
            self.train_dataset,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            **batching,
        )
        # A per-rank sampler already picked this process's share: sharding again would drop most of it.
        return loader if spec.per_rank else self.accelerator.prepare(loader)

    def _save_checkpoint(self, model, trial):
        """transformers' save, between our marker steps: old marker gone first, rotation after the new one."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        run_dir = self._get_output_dir(trial=trial)
        target = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            begin_save(target)
        self.accelerator.wait_for_everyone()  # no rank writes into target while its old marker may be there
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # transformers would rotate before our marker is written
        try:
            super()._save_checkpoint(model, trial)
        except Exception as e:
            if not _is_write_failure(e):
                raise
            raise SaveError(target, run_dir, e) from e
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(target, self.state.global_step)
            rotate(run_dir, limit, keep=self.state.best_model_checkpoint)


def _is_write_failure(e: BaseException) -> bool:
    """Disk full, read-only, or safetensors' own write error."""
    return isinstance(e, OSError) or type(e).__name__ == "SafetensorError"


class SaveError(UserError):
    """A checkpoint save failed: say which checkpoint is incomplete and which one a rerun resumes from."""

    exit_code = 2

    def __init__(self, target, run_dir, cause):
        intact = latest_complete_checkpoint(run_dir)
        reason = getattr(cause, "strerror", None) or (str(cause).splitlines() or [type(cause).__name__])[0]
        super().__init__(
            f"saving {target} failed ({reason}); it is incomplete and will not be resumed from; "
            + (f"the last intact checkpoint is {intact}" if intact else "no intact checkpoint is left")
        )


class EpochAwareLoader(DataLoader):
    """Forwards Trainer's set_epoch to the plugin's (batch) sampler so each epoch reshuffles deterministically."""

    def set_epoch(self, epoch: int) -> None:
        for sampler in (self.batch_sampler, self.sampler):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
