"""What every replacement needs to know about the run."""

from __future__ import annotations

from dataclasses import dataclass

from ..rules import Architecture
from ..selection import Selection


@dataclass(frozen=True)
class PatchContext:
    selection: Selection
    arch: Architecture
    # None: use Triton wherever the tensors allow it (CUDA, or CPU under the interpreter); False: torch only.
    use_triton: bool | None
