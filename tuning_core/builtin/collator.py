"""Built-in collator: right-pads a batch; labels pad with -100 so padding never counts in the loss."""

from __future__ import annotations

from tuning_core.plugin_api import hookimpl

IGNORE_INDEX = -100


class PaddedCollator:
    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        longest = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        n = len(rows)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, longest), dtype=torch.long)
        for i, row in enumerate(rows):
            k = len(row["input_ids"])
            input_ids[i, :k] = torch.as_tensor(row["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.as_tensor(row["labels"], dtype=torch.long)
            attention_mask[i, :k] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


@hookimpl(trylast=True)
def tuning_core_data_collator(config, tokenizer, model):
    return PaddedCollator(tokenizer.pad_token_id)
