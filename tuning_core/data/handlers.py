"""Data handlers: named steps a data config applies to a dataset, under fms-hf-tuning's names and arguments.

A handler sees the dataset as columns (``Records``). Built-in handlers work on whole columns (kind
"columns"), so a data config costs no per-example Python over the flag path; the tokenizing ones reuse the
exact character-offset masking of ``masking.SpanEncoder``. Third-party handlers may be written as
fms-hf-tuning writes them: a function of one row (kind "map" or "filter"), or of a batch with ``batched``.
Every handler is registered through the ``tuning_core_data_handlers`` hook, the built-ins included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuning_core.data.readers import MISSING, Records
from tuning_core.errors import ConfigError, DataError

KINDS = ("map", "filter", "columns", "remove", "select", "rename")
# Arguments of HF's Dataset.map/filter that fms-hf-tuning passes through; accepted, and those that only tune
# HF's own execution (num_proc, batch_size, ...) have no effect here.
MAP_ARGUMENTS = (
    "fn_kwargs",
    "remove_columns",
    "batched",
    "batch_size",
    "num_proc",
    "load_from_cache_file",
    "desc",
    "keep_in_memory",
    "writer_batch_size",
)
# What the pipeline offers every handler that asks for it by name (fms-hf-tuning's "default arguments").
CONTEXT_ARGUMENTS = ("tokenizer", "column_names", "max_seq_length")


@dataclass
class DataHandler:
    """A named data step, as returned by the ``tuning_core_data_handlers`` hook.

    ``fn`` by ``kind``: "map" ``fn(element, **fn_kwargs) -> dict`` of new or updated fields (with
    ``batched: true`` the element is a dict of lists); "filter" ``fn(element, **fn_kwargs) -> bool``;
    "columns" ``fn(records, context, **fn_kwargs) -> dict`` of columns, or ``Records``. Context names in
    ``fn``'s signature (tokenizer, column_names, max_seq_length) are filled in by the pipeline.
    "remove"/"select"/"rename" are the native column operations and need no ``fn``.
    """

    fn: Callable | None = None
    kind: str = "map"
    description: str = ""
    allows_batching: bool = True
    extra_arguments: tuple[str, ...] = ()  # accepted in fn_kwargs though fn does not name them

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"DataHandler.kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.fn is None and self.kind in ("map", "filter", "columns"):
            raise ValueError(f"a DataHandler of kind {self.kind!r} needs fn")

    def parameters(self) -> tuple[list[str], bool]:
        """(fn_kwargs names the handler takes, whether it takes **kwargs)."""
        if self.fn is None:
            return [], False
        params = list(inspect.signature(self.fn).parameters.values())
        skip = 2 if self.kind == "columns" else 1  # (records, context) or (element)
        names = [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return names + list(self.extra_arguments), any(p.kind == p.VAR_KEYWORD for p in params)

    def identity(self) -> str:
        """What the cache key records of the code: where the function lives and a hash of its source, so
        editing a handler never serves data processed by its old version."""
        import hashlib

        fn = self.fn
        try:
            source = inspect.getsource(fn) if fn is not None else ""
        except (OSError, TypeError):
            source = repr(fn)
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        return f"{self.kind}:{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}:{digest}"


@dataclass
class HandlerContext:
    tokenizer: Any
    max_seq_length: int
    where: str  # e.g. "data.yaml: dataset 'alpaca': data_handlers[0] (tokenize)"
    encoder: Any = None  # a SpanEncoder, built once per run
    notes: dict = field(default_factory=dict)

    def span_encoder(self):
        if self.encoder is None:
            from tuning_core.data.masking import SpanEncoder

            self.encoder = SpanEncoder(self.tokenizer, self.max_seq_length)
        return self.encoder


def check_arguments(name: str, handler: DataHandler, arguments: dict, where: str) -> None:
    """A handler argument the handler does not take is a ConfigError naming it and the closest one."""
    from tuning_core.config.parser import closest

    if handler.kind == "remove" or handler.kind == "select":
        allowed = ["column_names"]
    elif handler.kind == "rename":
        allowed = ["column_mapping"]
    else:
        allowed = list(MAP_ARGUMENTS)
    for key in arguments:
        if key not in allowed:
            near = closest(key, allowed)
            raise ConfigError(
                f"{where}: handler '{name}' has no argument '{key}'"
                + (f"; did you mean '{near}'?" if near else f" (it takes {', '.join(allowed)})")
            )
    if handler.kind in ("remove", "select", "rename"):
        if allowed[0] not in arguments:
            raise ConfigError(f"{where}: handler '{name}' needs arguments.{allowed[0]}")
        return
    fn_kwargs = arguments.get("fn_kwargs") or {}
    if not isinstance(fn_kwargs, dict):
        raise ConfigError(f"{where}: arguments.fn_kwargs of handler '{name}' must be a mapping")
    names, _ = handler.parameters()
    for key in fn_kwargs:
        if key not in names or key in ("tokenizer", "column_names"):
            near = closest(key, names)
            raise ConfigError(
                f"{where}: handler '{name}' does not take fn_kwargs.{key}"
                + (f"; did you mean '{near}'?" if near else f" (it takes {', '.join(names) or 'none'})")
            )
    params = inspect.signature(handler.fn).parameters
    skip = 2 if handler.kind == "columns" else 1
    for p in list(params.values())[skip:]:
        if (
            p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in fn_kwargs
            and p.name not in CONTEXT_ARGUMENTS
        ):
            raise ConfigError(f"{where}: handler '{name}' needs fn_kwargs.{p.name}")
    remove = arguments.get("remove_columns")
    if remove is not None and not (
        remove == "all"
        or isinstance(remove, str)
        or (isinstance(remove, list) and all(isinstance(c, str) for c in remove))
    ):
        raise ConfigError(
            f"{where}: arguments.remove_columns of handler '{name}' must be 'all', a column name or a list of them"
        )
    if "batched" in arguments and not isinstance(arguments["batched"], bool):
        raise ConfigError(f"{where}: arguments.batched of handler '{name}' must be true or false")


def apply_handler(
    name: str, handler: DataHandler, arguments: dict, records: Records, context: HandlerContext
) -> Records:
    """Run one handler over ``records`` and return the new records."""
    arguments = arguments or {}
    names = list(records.names)
    if handler.kind in ("remove", "select"):
        wanted = _as_list(arguments["column_names"])
        _need_columns(wanted, records, context.where)
        keep = [n for n in names if n not in wanted] if handler.kind == "remove" else wanted
        return records.with_columns({n: records.column(n) for n in keep})
    if handler.kind == "rename":
        mapping = arguments["column_mapping"]
        if not isinstance(mapping, dict):
            raise ConfigError(f"{context.where}: arguments.column_mapping must map old names to new names")
        _need_columns(list(mapping), records, context.where)
        return records.with_columns({mapping.get(n, n): records.column(n) for n in names})

    fn_kwargs = _with_context(handler, context, names, dict(arguments.get("fn_kwargs") or {}))
    remove = arguments.get("remove_columns")
    removed = set(names) if remove == "all" else set(_as_list(remove)) if remove else set()
    if handler.kind == "columns":
        try:
            out = handler.fn(records, context, **fn_kwargs)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{context.where}: {e}") from None
        if isinstance(out, Records):
            return out
        return _merge(records, out, removed)
    if handler.kind == "filter":
        keep = _run_rows(handler, records, fn_kwargs, bool(arguments.get("batched")), context, filter_=True)
        return records.select(keep)
    new = _run_rows(handler, records, fn_kwargs, bool(arguments.get("batched")), context, filter_=False)
    return _merge(records, new, removed)


def _context_kwargs(handler: DataHandler, context: HandlerContext, names: list[str]) -> dict:
    params = inspect.signature(handler.fn).parameters
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    offered = {"tokenizer": context.tokenizer, "column_names": names, "max_seq_length": context.max_seq_length}
    return {k: v for k, v in offered.items() if takes_all or k in params}


def _with_context(handler: DataHandler, context: HandlerContext, names: list[str], fn_kwargs: dict) -> dict:
    return {**_context_kwargs(handler, context, names), **fn_kwargs}  # the config's values win


def _run_rows(handler, records: Records, fn_kwargs: dict, batched: bool, context, filter_: bool):
    names = list(records.names)
    columns = [records.column(n) for n in names]
    fn = handler.fn
    try:
        if batched:
            batch = {n: [None if v is MISSING else v for v in col] for n, col in zip(names, columns, strict=False)}
            result = fn(batch, **fn_kwargs)
            if filter_:
                return [i for i, ok in enumerate(result) if ok]
            return dict(result)
        results = []
        for i, values in enumerate(zip(*columns, strict=False)):
            element = {n: v for n, v in zip(names, values, strict=False) if v is not MISSING}
            try:
                results.append(fn(element, **fn_kwargs))
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{context.where}: {records.where(i)}: {type(e).__name__}: {e}") from None
    except DataError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{context.where}: {type(e).__name__}: {e}") from None
    if filter_:
        return [i for i, ok in enumerate(results) if ok]
    out: dict[str, list] = {}
    for i, row in enumerate(results):
        if not isinstance(row, dict):
            raise DataError(
                f"{context.where}: the handler returned {type(row).__name__} for {records.where(i)}; "
                f"a map handler returns a dict of fields"
            )
        for k, v in row.items():
            out.setdefault(k, [MISSING] * len(results))[i] = v
    return out


def _merge(records: Records, new: dict, removed: set) -> Records:
    columns = {n: records.column(n) for n in records.names if n not in removed and n not in new}
    for k, v in new.items():
        if len(v) != len(records):
            raise DataError(f"handler output column {k!r} has {len(v)} rows; the data has {len(records)}")
        columns[k] = v
    return records.with_columns(columns)


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _need_columns(wanted: list[str], records: Records, where: str) -> None:
    for c in wanted:
        if c not in records.names:
            raise ConfigError(f"{where}: column {c!r} is not in the data (it has {', '.join(records.names)})")


def registered_handlers(pm=None) -> dict[str, DataHandler]:
    """Every handler offered through the ``tuning_core_data_handlers`` hook, by name."""
    from tuning_core.plugins import call_all, get_plugin_manager

    pm = pm or get_plugin_manager()
    out: dict[str, DataHandler] = {}
    owner: dict[str, str] = {}
    for plugin, handlers in call_all(pm, "tuning_core_data_handlers"):
        for name, handler in dict(handlers).items():
            if not isinstance(handler, DataHandler):
                raise ConfigError(
                    f"plugin '{plugin}' offers data handler '{name}' as {type(handler).__name__}, not a DataHandler"
                )
            if name in out:
                raise ConfigError(f"data handler '{name}' is offered by both '{owner[name]}' and '{plugin}'")
            out[name], owner[name] = handler, plugin
    return out
