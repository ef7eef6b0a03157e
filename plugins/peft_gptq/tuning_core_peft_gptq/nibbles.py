"""4-bit packing in the GPTQ checkpoint layout.

Eight 4-bit values share one int32, the first in the lowest nibble:
- ``qweight`` [in/8, out]: packs 8 consecutive *input* rows of the [in, out] integer weight;
- ``qzeros`` [groups, out/8]: packs 8 consecutive *output* columns of the [groups, out] zero points.
"""

from __future__ import annotations

import torch

BITS = 4
PER_INT32 = 32 // BITS
MAXQ = (1 << BITS) - 1
_SHIFTS = torch.arange(0, 32, BITS, dtype=torch.int32)


def _to_int32(words: torch.Tensor) -> torch.Tensor:
    # Values >= 2**31 must wrap to negative int32, as the format stores them.
    words = torch.where(words >= 2**31, words - 2**32, words)
    return words.to(torch.int32)


def pack_rows(q: torch.Tensor) -> torch.Tensor:
    """[K, N] ints in [0, 15] -> [K/8, N] int32 (K divisible by 8)."""
    k, n = q.shape
    if k % PER_INT32:
        raise ValueError(f"pack_rows needs a row count divisible by {PER_INT32}, got {k}")
    q = q.to(torch.int64).reshape(k // PER_INT32, PER_INT32, n)
    words = (q << _SHIFTS.to(device=q.device, dtype=torch.int64).view(1, -1, 1)).sum(dim=1)
    return _to_int32(words)


def pack_cols(q: torch.Tensor) -> torch.Tensor:
    """[G, N] ints in [0, 15] -> [G, N/8] int32 (N divisible by 8)."""
    return pack_rows(q.t().contiguous()).t().contiguous()


def unpack_rows(packed: torch.Tensor) -> torch.Tensor:
    """[K/8, N] int32 -> [K, N] int32 in [0, 15]."""
    shifts = _SHIFTS.to(packed.device).view(1, -1, 1)
    q = (packed.unsqueeze(1) >> shifts) & MAXQ
    return q.reshape(-1, packed.shape[-1])


def unpack_cols(packed: torch.Tensor) -> torch.Tensor:
    """[G, N/8] int32 -> [G, N] int32 in [0, 15]."""
    shifts = _SHIFTS.to(packed.device).view(1, 1, -1)
    q = (packed.unsqueeze(-1) >> shifts) & MAXQ
    return q.reshape(packed.shape[0], -1)
