"""Padding-free collation: a batch becomes one row, examples back to back, no padding.

Attention stays inside each example because position_ids restart at 0 for
every example: transformers then builds a block-diagonal causal mask (sdpa,
eager, flex) or passes sequence boundaries to the varlen kernel (flash
attention, which also gets cu_seq_lens/max_length directly).

Labels are copied unchanged except the first label of each example, which
becomes -100: in a padded batch that position is never a target (the loss
shifts labels left), but in one row it would be predicted from the previous
example's last token. With it masked, the set of (prediction, target) pairs,
and so the loss and its normalisation, equal the padded batch's exactly.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


class PaddingFreeCollator:
    def __init__(self, return_flash_kwargs: bool = True):
        self.return_flash_kwargs = return_flash_kwargs

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids, labels, positions, lengths = [], [], [], []
        for row in rows:
            x = torch.as_tensor(row["input_ids"], dtype=torch.long).reshape(-1)
            if x.numel() == 0:
                continue  # an empty example contributes no tokens and no targets
            y = torch.as_tensor(row["labels"] if "labels" in row else x, dtype=torch.long).reshape(-1).clone()
            if y.shape != x.shape:
                raise ValueError(f"labels ({y.numel()}) and input_ids ({x.numel()}) differ in length")
            y[0] = IGNORE_INDEX
            ids.append(x)
            labels.append(y)
            positions.append(torch.arange(x.numel(), dtype=torch.long))
            lengths.append(x.numel())
        if not ids:
            raise ValueError("padding-free collator got a batch without tokens")
        batch = {
            "input_ids": torch.cat(ids)[None],
            "labels": torch.cat(labels)[None],
            "position_ids": torch.cat(positions)[None],
        }
        if self.return_flash_kwargs:
            cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
            cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
            longest = max(lengths)
            batch.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)
        return batch
