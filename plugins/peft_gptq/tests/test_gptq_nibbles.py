"""The 4-bit int32 packing of the GPTQ format: layout and round trips."""

import pytest
import torch

from tuning_core_peft_gptq import nibbles


@pytest.mark.parametrize("k,n", [(8, 1), (64, 48), (136, 8)])
def test_rows_round_trip(k, n):
    g = torch.Generator().manual_seed(k * n)
    q = torch.randint(0, 16, (k, n), generator=g)
    packed = nibbles.pack_rows(q)
    assert packed.dtype == torch.int32 and packed.shape == (k // 8, n)
    assert torch.equal(nibbles.unpack_rows(packed), q.int())


def test_cols_round_trip():
    q = torch.randint(0, 16, (5, 40), generator=torch.Generator().manual_seed(1))
    packed = nibbles.pack_cols(q)
    assert packed.shape == (5, 5)
    assert torch.equal(nibbles.unpack_cols(packed), q.int())


def test_layout_first_value_in_lowest_nibble_and_sign_wrap():
    q = torch.tensor([[1], [2], [3], [4], [5], [6], [7], [15]])
    word = nibbles.pack_rows(q)[0, 0].item()
    # 0xF7654321 as a signed int32: the top nibble 15 makes it negative.
    assert word == 0xF7654321 - 2**32
    assert nibbles.pack_cols(q.t())[0, 0].item() == word


def test_rejects_rows_not_divisible_by_8():
    with pytest.raises(ValueError, match="divisible by 8"):
        nibbles.pack_rows(torch.zeros(12, 4, dtype=torch.int32))
