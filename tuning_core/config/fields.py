"""Turn dataclass fields into flag specs: one place that knows how a type parses."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Collection
from dataclasses import MISSING, dataclass
from typing import Any

from tuning_core.errors import ConfigError, shorten

_SCALARS = (str, int, float, bool)


@dataclass
class FieldSpec:
    """How one config key is parsed, whichever dataclass owns it."""

    name: str
    owner: type
    scalar: type  # str, int, float, bool, or dict (a JSON object given as text on the CLI)
    is_list: bool
    optional: bool
    default: Any
    help: str
    choices: tuple | None = None
    nargs: str | int | None = None
    const: Any = None
    aliases: tuple[str, ...] = ()
    parse: Any = None  # optional (value, where) -> value, for values no single type describes
    rule: Any = None  # a config.rules.Rule: the range a number must fall in

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def flags(self) -> list[str]:
        return [f"--{self.name}"] + [f"--{a}" for a in self.aliases]

    # -- value conversion -------------------------------------------------

    def convert(self, value: Any, where: str) -> Any:
        """Coerce a value from the CLI (strings) or a config file (JSON types) to this field's type."""
        if value is None:
            return None
        if self.parse is not None:
            return self.parse(value, where)
        if self.is_list:
            if isinstance(value, (str, int, float, bool)):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: expected a list for '{self.name}', got {type(value).__name__}")
            out = [self._scalar(v, where) for v in value]
            for v in out:
                self._check_choice(v, where)
                self._check_rule(v, where)
            return out
        out = self._scalar(value, where)
        self._check_choice(out, where)
        self._check_rule(out, where)
        return out

    def _check_rule(self, v, where):
        problem = self.rule.problem(v) if self.rule is not None else None
        if problem:
            raise ConfigError(f"{where}: invalid value for '{self.name}': {problem}")

    def _check_choice(self, v, where):
        if self.choices is not None and v not in self.choices:
            raise ConfigError(
                f"{where}: invalid value {shorten(v)} for '{self.name}'; "
                f"expected one of {', '.join(map(str, self.choices))}"
            )

    def _scalar(self, v: Any, where: str) -> Any:
        try:
            if self.scalar is bool:
                return to_bool(v)
            if self.scalar is dict:
                return json.loads(v) if isinstance(v, str) else v
            if self.scalar is int:
                if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                    raise ValueError
                return int(v)
            if self.scalar is float:
                return float(v)
            if isinstance(v, (dict, list)):
                raise ValueError
            return v if isinstance(v, str) else str(v)
        except (ValueError, TypeError):
            kind = {bool: "true/false", int: "an integer", float: "a number", dict: "a JSON object"}.get(
                self.scalar, "a string"
            )
            raise ConfigError(f"{where}: invalid value {shorten(v)} for '{self.name}'; expected {kind}") from None


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "y", "on"):
        return True
    if s in ("false", "0", "no", "n", "off", "none"):
        return False
    raise ValueError(v)


def specs_for(
    cls: type,
    owned_elsewhere: Collection[str] = frozenset(),
    lenient: bool = False,
    defaults: dict[str, Any] | None = None,
) -> list[FieldSpec]:
    """Flag specs for every init field of dataclass ``cls``.

    ``lenient`` maps types we cannot express (unions with enums, dicts) to
    strings, for third-party dataclasses such as transformers.TrainingArguments.
    """
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_") or f.name in owned_elsewhere:
            continue
        try:
            scalar, is_list, optional, choices = _analyse(hints[f.name])
        except TypeError:
            if not lenient:
                raise TypeError(f"{cls.__name__}.{f.name}: unsupported type {hints[f.name]!r}") from None
            continue
        meta = dict(f.metadata)
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        if isinstance(default, enum.Enum):
            default = default.value
        help_text = meta.get("help")
        if not help_text and not lenient:
            raise TypeError(f"{cls.__name__}.{f.name} needs metadata={{'help': ...}}")
        out.append(
            FieldSpec(
                name=f.name,
                owner=cls,
                scalar=scalar,
                is_list=is_list,
                optional=optional,
                default=default,
                help=(help_text or "").strip(),
                choices=tuple(meta["choices"]) if "choices" in meta else choices,
                nargs=meta.get("nargs"),
                const=meta.get("const"),
                aliases=tuple(meta.get("aliases", ())),
                parse=meta.get("parse"),
                rule=meta.get("rule"),
            )
        )
    return out


def _analyse(tp) -> tuple[type, bool, bool, tuple | None]:
    """(scalar type, is_list, optional, choices) for a type annotation."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        literal_false = [a for a in args if typing.get_origin(a) is typing.Literal]
        args = [a for a in args if a not in literal_false]
        if len(args) == 1:
            scalar, is_list, _, choices = _analyse(args[0])
            return scalar, is_list, optional, choices
        # X | str (enums, debug options...) parse as strings; the owner validates.
        if str in args:
            if any(typing.get_origin(a) is list for a in args):
                return str, True, optional, None
            return str, False, optional, None
        if dict in args or any(typing.get_origin(a) is dict for a in args):
            return dict, False, optional, None
        raise TypeError(tp)
    if origin is typing.Literal:
        values = typing.get_args(tp)
        return type(values[0]), False, False, tuple(values)
    if origin in (list, tuple):
        (inner, *_rest) = typing.get_args(tp) or (str,)
        scalar, _, _, choices = _analyse(inner)
        return scalar, True, False, choices
    if origin is dict or tp is dict:
        return dict, False, False, None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return str, False, False, tuple(m.value for m in tp)
    if tp in _SCALARS:
        return tp, False, False, None
    raise TypeError(tp)
