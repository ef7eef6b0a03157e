"""The resolved configuration every hook receives."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Config:
    """Typed sections (one dataclass instance per contributor) behind flat attribute access.

    ``config.learning_rate`` reads whichever section owns that field, so hooks
    use the same names as the flags. Assigning a known field writes to its section.
    """

    def __init__(self, sections: list[Any], training_args: Any = None):
        # {setting: the flag or config file that set it}; filled by load_train_config
        object.__setattr__(self, "given", {})
        object.__setattr__(self, "_sections", {type(s): s for s in sections})
        owners: dict[str, Any] = {}
        for s in sections:
            for f in dataclasses.fields(s):
                owners.setdefault(f.name, s)
        object.__setattr__(self, "_owners", owners)
        object.__setattr__(self, "training_args", training_args)

    def section(self, cls: type):
        try:
            return self._sections[cls]
        except KeyError:
            raise KeyError(f"no config section {cls.__name__}; is its plugin loaded?") from None

    def has(self, name: str) -> bool:
        return name in self._owners or (self.training_args is not None and hasattr(self.training_args, name))

    def __getattr__(self, name: str) -> Any:
        owners = object.__getattribute__(self, "_owners")
        if name in owners:
            return getattr(owners[name], name)
        targs = object.__getattribute__(self, "training_args")
        if targs is not None and not name.startswith("_") and hasattr(targs, name):
            return getattr(targs, name)
        raise AttributeError(f"config has no setting '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "training_args":
            object.__setattr__(self, name, value)
        elif name in self._owners:
            setattr(self._owners[name], name, value)
        elif self.training_args is not None and hasattr(self.training_args, name):
            setattr(self.training_args, name, value)
        else:
            raise AttributeError(f"config has no setting '{name}'")

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a flat, JSON-friendly dict (training arguments included)."""
        out: dict[str, Any] = {}
        if self.training_args is not None:
            for f in dataclasses.fields(self.training_args):
                if f.init and not f.name.startswith("_"):
                    out[f.name] = _plain(getattr(self.training_args, f.name, None))
        for s in self._sections.values():
            for f in dataclasses.fields(s):
                out[f.name] = _plain(getattr(s, f.name))
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):  # before the str check: str-based enums are str instances too
        return v.value
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)
