"""Recognise a GPTQ checkpoint and read its quantization settings (json only, no torch).

GPTQModel and AutoGPTQ write ``quantize_config.json`` and copy the same dict into
``config.json`` as ``quantization_config`` (``quant_method: "gptq"``); either is enough.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

QUANTIZE_CONFIG = "quantize_config.json"
# "gptq" (v1) stores every zero point minus one, an AutoGPTQ legacy; "gptq_v2" stores it as is.
FORMATS = ("gptq", "gptq_v2")


@dataclass
class GPTQFormat:
    """The settings of a GPTQ checkpoint that decide how its tensors are read."""

    bits: int = 4
    group_size: int = 128  # -1: one group spanning all input features
    desc_act: bool = False
    sym: bool = True
    checkpoint_format: str = "gptq"
    extra: dict = field(default_factory=dict)  # the other keys, kept when written back

    @property
    def zero_offset(self) -> int:
        return 1 if self.checkpoint_format == "gptq" else 0

    @classmethod
    def from_dict(cls, d: dict) -> GPTQFormat:
        known = {"bits", "group_size", "desc_act", "sym", "checkpoint_format", "format"}
        fmt = d.get("checkpoint_format", d.get("format", "gptq"))
        return cls(
            bits=int(d.get("bits", 4)),
            group_size=int(d.get("group_size", 128)),
            desc_act=bool(d.get("desc_act", False)),
            sym=bool(d.get("sym", True)),
            checkpoint_format=str(fmt),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_dict(self) -> dict:
        return {
            **self.extra,
            "bits": self.bits,
            "group_size": self.group_size,
            "desc_act": self.desc_act,
            "sym": self.sym,
            "quant_method": "gptq",
            "checkpoint_format": self.checkpoint_format,
            "pack_dtype": "int32",
        }

    def problems(self) -> list[str]:
        """What this plugin cannot serve in the checkpoint (empty when all is fine)."""
        out = []
        if self.bits != 4:
            out.append(f"bits={self.bits} (only 4-bit GPTQ is supported)")
        if self.checkpoint_format not in FORMATS:
            out.append(f"checkpoint_format={self.checkpoint_format!r} (expected one of {', '.join(FORMATS)})")
        if self.extra.get("pack_dtype", "int32") != "int32":
            out.append(f"pack_dtype={self.extra['pack_dtype']!r} (expected int32)")
        if self.group_size != -1 and self.group_size <= 0:
            out.append(f"group_size={self.group_size}")
        return out

    def describe(self) -> str:
        group = "per-channel" if self.group_size == -1 else f"group {self.group_size}"
        return (
            f"GPTQ {self.bits}-bit, {group}, desc_act={self.desc_act}, sym={self.sym}, format {self.checkpoint_format}"
        )


def _read_json(model_path: str, filename: str) -> dict | None:
    path = Path(model_path)
    if path.is_dir():
        file = path / filename
        return json.loads(file.read_text()) if file.is_file() else None
    if os.path.exists(model_path):  # a file, not a checkpoint directory
        return None
    try:  # a hub id: only what is already cached or reachable
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model_path, filename)).read_text())
    except Exception:
        return None


def read_gptq_format(model_path: str | os.PathLike) -> GPTQFormat | None:
    """The checkpoint's GPTQ settings, or None when it is not a GPTQ checkpoint."""
    model_path = str(model_path)
    qc = _read_json(model_path, QUANTIZE_CONFIG)
    if qc is None:
        cfg = _read_json(model_path, "config.json") or {}
        qc = cfg.get("quantization_config")
        if not isinstance(qc, dict) or "quant_method" not in qc:
            return None
    if not isinstance(qc, dict) or qc.get("quant_method", "gptq") != "gptq":  # e.g. an AWQ checkpoint
        return None
    return GPTQFormat.from_dict(qc)
