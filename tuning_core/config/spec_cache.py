"""Flag specs of third-party dataclasses, cached per installed version.

`tuning-core train --help` lists transformers.TrainingArguments' fields, and importing transformers
(with torch, trl and peft behind it) takes seconds. The field table only changes with the installed
transformers, so it is built once per version and read back from a small JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING
from importlib import metadata
from pathlib import Path
from typing import Any

from tuning_core.config.fields import FieldSpec
from tuning_core.user_cache import cache_root, write_text_atomic

FORMAT = 1  # bump when FieldSpec's stored form changes
_SCALARS = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}
_MISSING = "__missing__"


def cache_dir() -> Path:
    return cache_root() / "flags"


def cached_specs(name: str, distribution: str, owner: type, build: Callable[[], list[FieldSpec]]) -> list[FieldSpec]:
    """``build()``'s specs, from the cache when ``distribution``'s installed version has been seen before.

    ``owner`` stands in for the real dataclass on specs read back, so that reading them imports nothing.
    """
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return build()
    path = cache_dir() / f"{name}-{distribution}-{version}-v{FORMAT}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [_from_row(row, owner) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    specs = build()
    try:
        text = json.dumps([_to_row(s) for s in specs])
    except TypeError:  # a default JSON cannot hold would come back wrong: no cache, same flags
        return specs
    write_text_atomic(path, text)
    return specs


def _to_row(spec: FieldSpec) -> dict[str, Any]:
    default = _MISSING if spec.default is MISSING else spec.default
    return {
        "name": spec.name,
        "scalar": spec.scalar.__name__,
        "is_list": spec.is_list,
        "optional": spec.optional,
        "default": default,
        "help": spec.help,
        "choices": list(spec.choices) if spec.choices else None,
        "nargs": spec.nargs,
        "const": spec.const,
        "aliases": list(spec.aliases),
    }


def _from_row(row: dict[str, Any], owner: type) -> FieldSpec:
    return FieldSpec(
        name=row["name"],
        owner=owner,
        scalar=_SCALARS[row["scalar"]],
        is_list=row["is_list"],
        optional=row["optional"],
        default=MISSING if row["default"] == _MISSING else row["default"],
        help=row["help"],
        choices=tuple(row["choices"]) if row["choices"] else None,
        nargs=row["nargs"],
        const=row["const"],
        aliases=tuple(row["aliases"]),
    )
