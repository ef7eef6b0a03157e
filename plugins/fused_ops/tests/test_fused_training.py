"""A few optimizer steps with a bare transformers Trainer give the same losses patched and unpatched.

LoRA on every projection (fused q/k/v, o and MLP) plus every kernel, Triton interpreter.
The logged losses must agree to 1e-4 relative (float32; three steps of AdamW compound tiny
summation-order differences).
"""

from __future__ import annotations

import pytest
import torch

from tuning_core_fused_ops.patcher import patch_model
from tuning_core_fused_ops.patches.install import unpatch
from tuning_core_fused_ops.selection import Selection


def _dataset(n=8, vocab=500):
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        ids = torch.randint(3, vocab, (6 + i % 4,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    return rows


def _collate(rows):
    width = max(len(r["input_ids"]) for r in rows)
    pad = lambda seq, v: seq + [v] * (width - len(seq))  # noqa: E731
    return {
        "input_ids": torch.tensor([pad(r["input_ids"], 0) for r in rows]),
        "labels": torch.tensor([pad(r["labels"], -100) for r in rows]),
        "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in rows]),
    }


def _train_losses(model_dir, tmp_path, patch: Selection | None):
    import peft
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    model = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
    )
    if patch is not None:
        patch_model(model, patch)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        data_seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_dataset(), data_collator=_collate)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    unpatch(model)
    return losses


@pytest.mark.slow
def test_trainer_losses_match(tiny_llama, tmp_path):
    ref = _train_losses(tiny_llama, tmp_path / "ref", None)
    got = _train_losses(
        tiny_llama, tmp_path / "fused", Selection(loss="fused_linear", rms_norm=True, rope=True, swiglu=True, lora=True)
    )
    assert len(ref) == 3
    assert ref[0] != ref[-1]  # the steps did train
    assert got == pytest.approx(ref, rel=1e-4)
