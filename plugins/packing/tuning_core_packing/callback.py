"""Record, per micro-batch, the tokens every process really ran, next to the multipack plan.

Counting happens in a forward pre-hook on the training model, so it sees what
reached the model, not what the sampler intended. Counts are gathered to rank
0 at each logging step (all processes log at the same steps) and rank 0 alone
appends them to ``output_dir/packing_tokens.jsonl``:

    {"epoch": 0, "micro_batch": 3, "step": [2, 2], "tokens": [812, 809],
     "sequences": [3, 2], "planned_tokens": [812, 809]}
"""

from __future__ import annotations

import json
import math
import os

from transformers import TrainerCallback

from tuning_core_packing.sampler import MultipackBatchSampler

LOG_FILE = "packing_tokens.jsonl"


def find_sampler(dataloader) -> MultipackBatchSampler | None:
    """The multipack sampler behind a dataloader (also when the Trainer wrapped it to skip batches on resume)."""
    obj = getattr(dataloader, "batch_sampler", None)
    for _ in range(4):
        if isinstance(obj, MultipackBatchSampler):
            return obj
        obj = getattr(obj, "batch_sampler", None)
    return None


class PackingTokenLog(TrainerCallback):
    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOG_FILE)
        self.sampler: MultipackBatchSampler | None = None
        self._pending: list[dict] = []
        self._handle = None
        self._epoch = None
        self._micro = 0
        self._step = 0

    # -- counting -------------------------------------------------------------

    def _count(self, module, args, kwargs):
        import torch

        if not module.training or not torch.is_grad_enabled():
            return  # evaluation and probes are not training micro-batches
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        positions = kwargs.get("position_ids")
        mask = kwargs.get("attention_mask")
        tokens = int(mask.sum()) if mask is not None else int(ids.numel())
        sequences = int((positions == 0).sum()) if positions is not None else int(ids.shape[0])
        epoch = self.sampler.epoch if self.sampler is not None else self._epoch
        if epoch != self._epoch:
            self._epoch, self._micro = epoch, 0
        self._pending.append(
            {
                "epoch": epoch,
                "micro_batch": self._micro,
                "step": self._step + 1,
                "tokens": tokens,
                "sequences": sequences,
            }
        )
        self._micro += 1

    # -- trainer events -------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.sampler = find_sampler(train_dataloader)
        if self.sampler is not None:
            self._epoch = self.sampler.epoch
            if state.global_step:  # resumed: the Trainer skips the batches already trained in this epoch
                accum = args.gradient_accumulation_steps
                per_epoch = max(len(self.sampler) // accum + int(len(self.sampler) % accum > 0), 1)
                self._epoch = int(state.global_step // per_epoch)
                self._micro = (state.global_step % per_epoch) * accum
        self._step = state.global_step
        if model is not None and self._handle is None:
            self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._step = state.global_step

    def on_log(self, args, state, control, **kwargs):
        self._flush(args)

    def on_train_end(self, args, state, control, **kwargs):
        self._flush(args)
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- gathering and writing ------------------------------------------------

    def _flush(self, args) -> None:
        import torch.distributed as dist

        pending, self._pending = self._pending, []
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, pending)
        else:
            gathered = [pending]
        if args.process_index != 0:
            return
        rows = {}
        for rank, records in enumerate(gathered):
            for r in records:
                row = rows.setdefault(
                    (r["epoch"], r["micro_batch"]),
                    {
                        "epoch": r["epoch"],
                        "micro_batch": r["micro_batch"],
                        "step": [None] * len(gathered),
                        "tokens": [None] * len(gathered),
                        "sequences": [None] * len(gathered),
                    },
                )
                row["step"][rank] = r["step"]
                row["tokens"][rank] = r["tokens"]
                row["sequences"][rank] = r["sequences"]
        if not rows:
            return
        lines = []
        for key in sorted(rows, key=lambda k: (math.inf if k[0] is None else k[0], k[1])):
            row = rows[key]
            if self.sampler is not None and row["epoch"] is not None:
                planned = self.sampler.planned_tokens(row["epoch"])
                if row["micro_batch"] < len(planned):
                    row["planned_tokens"] = planned[row["micro_batch"]].tolist()
            lines.append(json.dumps(row))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
