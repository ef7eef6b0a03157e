"""The padding-free collator: one row, positions restart per example, labels kept, same targets as padded."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning_core.builtin.collator import PaddedCollator
from tuning_core_packing.collator import PaddingFreeCollator


def _row(ids, n_prompt):
    labels = list(ids)
    labels[:n_prompt] = [-100] * n_prompt  # completion-only: prompt tokens carry no loss
    return {"input_ids": list(ids), "labels": labels}


ROWS = [_row([5, 6, 7, 8], 2), _row([9, 10, 11], 1), _row([12, 13, 14, 15, 16], 4)]


def test_flattens_into_one_row_with_restarting_positions():
    b = PaddingFreeCollator()(ROWS)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]]
    assert b["cu_seq_lens_q"].tolist() == [0, 4, 7, 12] and b["cu_seq_lens_q"].dtype == torch.int32
    assert b["cu_seq_lens_k"] is b["cu_seq_lens_q"]
    assert b["max_length_q"] == b["max_length_k"] == 5
    assert "attention_mask" not in b  # transformers only detects packing without one


def test_labels_kept_except_each_examples_first():
    b = PaddingFreeCollator()(ROWS)
    assert b["labels"].tolist() == [[-100, -100, 7, 8, -100, 10, 11, -100, -100, -100, -100, 16]]


def test_prompt_tokens_never_trained():
    # fms-hf-tuning 3.2.2 trained on prompt tokens with padding-free; here every masked label stays masked.
    rows = [_row(range(20, 45), 22)]  # 25 tokens, 3 completion tokens
    b = PaddingFreeCollator()(rows)
    assert int(b["labels"].ne(-100).sum()) == 3


def test_without_flash_kwargs_and_empty_rows():
    b = PaddingFreeCollator(return_flash_kwargs=False)([{"input_ids": [], "labels": []}] + ROWS[:1])
    assert set(b) == {"input_ids", "labels", "position_ids"}
    assert b["input_ids"].tolist() == [[5, 6, 7, 8]]
    with pytest.raises(ValueError, match="without tokens"):
        PaddingFreeCollator()([{"input_ids": [], "labels": []}])
    with pytest.raises(ValueError, match="differ in length"):
        PaddingFreeCollator()([{"input_ids": [1, 2], "labels": [1]}])


def _targets_padded(batch):
    """(context, target) pairs the causal-LM loss trains on in a padded batch."""
    out = []
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for i in range(ids.shape[0]):
        n = int(mask[i].sum())
        for t in range(1, n):
            if labels[i, t] != -100:
                out.append((tuple(ids[i, :t].tolist()), int(labels[i, t])))
    return sorted(out)


def _targets_packed(batch):
    """The same pairs in a padding-free row: context is the tokens since the last position 0."""
    out = []
    ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    start = 0
    for t in range(1, ids.shape[0]):
        if pos[t] == 0:
            start = t
        if labels[t] != -100:
            assert pos[t] > 0  # a target at an example's first token would cross the boundary
            out.append((tuple(ids[start:t].tolist()), int(labels[t])))
    return sorted(out)


rows_strategy = st.lists(
    st.lists(st.integers(3, 60), min_size=1, max_size=12).flatmap(
        lambda ids: st.tuples(st.just(ids), st.integers(0, len(ids)))
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_same_prediction_targets_as_padded(spec):
    rows = [_row(ids, k) for ids, k in spec]
    padded = PaddedCollator(pad_token_id=0)(rows)
    packed = PaddingFreeCollator()(rows)
    assert _targets_packed(packed) == _targets_padded(padded)
    # Trainer's num_items_in_batch counts labels[..., 1:] != -100: equal, so the loss is normalised alike.
    assert int(packed["labels"][..., 1:].ne(-100).sum()) == int(padded["labels"][..., 1:].ne(-100).sum())
