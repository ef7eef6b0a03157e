"""Every field of the installed peft's LoraConfig as a flag and config key.

The flags come from peft's own dataclass, so a new peft release adds its
fields without code changes. `--help` and `tuning-core plugins` must not import
peft (seconds), so the field table is cached per installed peft version in a
small JSON file; the first run after a peft install builds it in a subprocess,
keeping peft out of the calling process even then.

Every field defaults to None, meaning "peft's own default": only the values a
user gives reach LoraConfig. r, lora_alpha, lora_dropout, target_modules and
bias stay in LoraArguments with fms-hf-tuning's defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import re
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

from tuning_core.errors import ConfigError
from tuning_core.user_cache import cache_root, write_text_atomic

OWNED_BY_LORA_ARGUMENTS = frozenset({"r", "lora_alpha", "lora_dropout", "target_modules", "bias"})
TABLE_FORMAT = 1
SHIPPED = Path(__file__).resolve().parent.parent / "resources"

# peft-internal fields: fms-hf-tuning accepts them (its LoraConfig subclasses peft's); what each does here.
INTERNAL_NOTES = {
    "task_type": "Only CAUSAL_LM (the default here) is accepted: tuning-core tunes causal language models.",
    "peft_type": "Only LORA is accepted (set by peft itself).",
    "auto_mapping": "Accepted and ignored: peft records it itself.",
    "peft_version": "Accepted and ignored: peft records the installed version.",
    "base_model_name_or_path": "Accepted and ignored: peft records the model that was tuned.",
    "revision": "Recorded in adapter_config.json (the base model revision to load it on).",
    "inference_mode": "Only false is accepted: an adapter in inference mode has nothing to train.",
    "megatron_config": "Not supported: tuning-core does not train with Megatron-LM parallel layers.",
    "megatron_core": "Accepted; used only together with megatron_config.",
    "runtime_config": "JSON object of peft's LoraRuntimeConfig (not saved with the adapter).",
}


# -- the field table -------------------------------------------------------------------------------


def peft_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("peft")
    except PackageNotFoundError:
        return None


def cache_dir() -> Path:
    """Next to the data cache: $TUNING_CORE_CACHE or ~/.cache/tuning_core."""
    return cache_root() / "fields"


def describe(cls: Any = None) -> list[dict[str, Any]]:
    """One row per LoraConfig init field (imports peft unless ``cls`` is given)."""
    if cls is None:
        from peft import LoraConfig as cls
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_") or f.name in OWNED_BY_LORA_ARGUMENTS:
            continue
        kind, choices = _kind(hints[f.name])
        help_text = " ".join(str(f.metadata.get("help") or "").split())
        note = INTERNAL_NOTES.get(f.name)
        rows.append(
            {
                "name": f.name,
                "kind": kind,
                "choices": choices,
                "help": help_text,
                "note": note,
                "peft_default": _default_text(f),
            }
        )
    return rows


def _default_text(f) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _kind(tp) -> tuple[str, list | None]:
    """How a field parses: bool, int, float, str, choice, list_int, list_str, str_or_list, json, ints_or_json,
    init (bool or a peft init name)."""
    args = [tp]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
    literals = [v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
    rest = [a for a in args if typing.get_origin(a) is not typing.Literal]
    if literals and rest == [bool]:
        return "init", list(literals)
    if literals and not rest:
        return "choice", list(literals)
    if len(rest) == 1 and rest[0] in (bool, int, float, str):
        return rest[0].__name__, None
    lists = [a for a in rest if typing.get_origin(a) is list]
    if any(typing.get_origin(a) is dict or a is dict for a in rest) and lists:
        return "ints_or_json", None
    if lists and all(a in (int, str) or typing.get_origin(a) is list for a in rest):
        inner = typing.get_args(lists[0])
        if inner and inner[0] is int:
            return "list_int", None
        if inner and inner[0] is str:
            return ("str_or_list" if str in rest else "list_str"), None
    if str in rest and all(a is str or (isinstance(a, type) and issubclass(a, enum.Enum)) for a in rest):
        return "str", None
    return "json", None  # dicts, peft's sub-config dataclasses, lists of tuples, anything new


def field_table() -> list[dict[str, Any]]:
    """The rows for the installed peft, from the per-version cache (built once, without importing peft here)."""
    version = peft_version()
    if version is None:
        return []
    name = f"peft-{version}-lora-fields.json"
    path = cache_dir() / name
    # The table for the peft this release was tested with ships in resources/ (a test keeps it equal to peft's
    # dataclass); any other peft version is described once and cached.
    for candidate in (SHIPPED / name, path):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
            if data.get("format") == TABLE_FORMAT and data.get("peft") == version:
                return data["fields"]
        except (OSError, ValueError, AttributeError):
            pass
    rows = describe() if "peft" in sys.modules else _describe_in_subprocess()
    write_text_atomic(path, json.dumps({"format": TABLE_FORMAT, "peft": version, "fields": rows}))
    return rows


def _describe_in_subprocess() -> list[dict[str, Any]]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tuning_core.config.lora_fields"], capture_output=True, text=True, timeout=300
        )
        if proc.returncode == 0:
            return json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return describe()


# -- the dataclass the parser sees -----------------------------------------------------------------

_ANNOTATIONS = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "choice": str,
    "init": str,
    "list_int": list[int],
    "list_str": list[str],
    "str_or_list": list[str],
    "json": dict,
    "ints_or_json": list[str],
}


@functools.cache
def lora_options_class() -> type:
    return build_options_class(field_table())


def build_options_class(rows: list[dict[str, Any]]) -> type:
    fields = []
    for row in rows:
        kind = row["kind"]
        meta: dict[str, Any] = {"help": _help(row)}
        if kind == "choice":
            meta["choices"] = list(row["choices"])
        parser = _PARSERS.get(kind)
        if parser is not None:
            meta["parse"] = functools.partial(parser, row=row)
        fields.append((row["name"], _ANNOTATIONS[kind] | None, dataclasses.field(default=None, metadata=meta)))
    cls = dataclasses.make_dataclass("LoraOptions", fields)
    cls.__module__ = __name__
    cls.__doc__ = "peft LoraConfig fields (from the installed peft); unset means peft's default."
    return cls


def _help(row) -> str:
    text = row["help"] or f"peft LoraConfig.{row['name']}."
    if row.get("note"):
        text = f"{row['note']} {text}"
    if row["kind"] == "json":
        text += " Give a JSON object (or list) on the command line."
    return f"{text} (peft default: {row['peft_default']})"


def _json(value, where: str, row) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(
                f"{where}: invalid value {value!r} for '{row['name']}'; expected JSON, e.g. '{{\"q_proj\": 16}}'"
            ) from None
    return value


def _str_or_list(value, where: str, row) -> Any:
    # A string from a config file stays a string: peft reads it as one regular expression (fms-hf-tuning too).
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"{where}: invalid value {value!r} for '{row['name']}'; expected a list of names or one regular expression"
    )


def _ints_or_json(value, where: str, row) -> Any:
    """A list of token ids, or {"embedding module": [ids]} (as JSON text on the command line)."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 1
        and isinstance(value[0], str)
        and value[0].lstrip().startswith("{")
    ):
        value = value[0]
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = _json(value, where, row)
    if isinstance(value, dict):
        return {str(k): _int_list(v, where, row) for k, v in value.items()}
    return _int_list(value, where, row)


def _int_list(value, where, row) -> list[int]:
    if not isinstance(value, (list, tuple)):
        value = [value]
    out = []
    for v in value:
        try:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(int(v))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: invalid value {v!r} for '{row['name']}'; expected token ids (integers)"
            ) from None
    return out


def _init(value, where: str, row) -> Any:
    """True/False or one of peft's init names (pissa_niter_N included)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for choice in row["choices"]:
        pattern = re.escape(choice).replace(re.escape("[number of iters]"), r"\d+")
        if re.fullmatch(pattern, text):
            return text
    names = ", ".join(["true", "false", *row["choices"]])
    raise ConfigError(f"{where}: invalid value {value!r} for '{row['name']}'; expected one of {names}")


_PARSERS = {"json": _json, "str_or_list": _str_or_list, "ints_or_json": _ints_or_json, "init": _init}


def given(config) -> dict[str, Any]:
    """The LoraConfig fields this run sets explicitly (unset ones keep peft's defaults)."""
    cls = lora_options_class()
    section = config.section(cls)
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(cls) if getattr(section, f.name) is not None}


def write_table(path: str | Path) -> None:
    """Write the installed peft's table (how resources/peft-*-lora-fields.json is made)."""
    data = {"format": TABLE_FORMAT, "peft": peft_version(), "fields": describe()}
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":  # the subprocess field_table() runs on a cold cache
    print(json.dumps(describe()))
