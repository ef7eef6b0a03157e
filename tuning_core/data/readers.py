"""Read training data files (.json, .jsonl, .parquet, .arrow, .csv; a file, directory or glob) into records.

Errors name the file and, for text formats, the line, because that is where the user has to look.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning_core.errors import DataError

EXTENSIONS = (".json", ".jsonl", ".parquet", ".arrow", ".csv")

MISSING = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
"""Placeholder for a field a record does not have (distinct from an explicit null)."""


@dataclass
class DataFile:
    path: Path
    content: bytes
    digest: str
    kind: str | None = None  # the extension to read it as (a data config's ``builder``), else its own

    @property
    def ext(self) -> str:
        return self.kind or self.path.suffix.lower()


BUILDER_EXTENSIONS = {"json": ".json", "jsonl": ".json", "parquet": ".parquet", "arrow": ".arrow", "csv": ".csv"}


def resolve_files(spec: str, flag: str = "--training_data_path", builder: str | None = None) -> list[Path]:
    """The data files named by ``spec``: one file, every data file in a directory, or a glob pattern. With a
    ``builder`` (json, parquet, ...) files are read as that, whatever their extension."""
    path = Path(spec).expanduser()
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"{flag} {spec}: the pattern matches no files")
    elif path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and (builder or p.suffix.lower() in EXTENSIONS)
        )
        if not files:
            raise DataError(f"{flag} {spec}: the directory has no data files ({', '.join(EXTENSIONS)})")
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"{flag} {spec}: no such file or directory")
    for f in files:
        if not builder and f.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{f}: unsupported file extension '{f.suffix}'; expected one of {', '.join(EXTENSIONS)}")
    return files


# Longest JSON Lines line read (bytes). Checked while streaming, before the file is loaded whole: one
# giant line would otherwise cost minutes and gigabytes before any error. No sane example comes near it.
MAX_JSONL_LINE_BYTES = 16 * 2**20


def check_line_lengths(path: Path, limit: int = MAX_JSONL_LINE_BYTES, chunk: int = 2**20) -> None:
    """Refuse a line longer than ``limit`` bytes, reading ``chunk`` bytes at a time."""
    line, current = 1, 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            parts = block.split(b"\n")
            for i, part in enumerate(parts):
                current += len(part)
                if current > limit:
                    raise DataError(
                        f"{path}: line {line} is longer than {limit // 2**20} MiB, the most tuning-core "
                        f"reads in one JSON Lines record; shorten or split it"
                    )
                if i < len(parts) - 1:
                    line, current = line + 1, 0


def read_bytes(paths: list[Path], builder: str | None = None) -> list[DataFile]:
    out = []
    for p in paths:
        try:
            if p.suffix.lower() == ".jsonl":
                check_line_lengths(p)
            content = p.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {p}: {e.strerror or e}") from None
        out.append(DataFile(p, content, hashlib.sha256(content).hexdigest(), BUILDER_EXTENSIONS.get(builder or "")))
    return out


@dataclass
class _Source:
    """One file's records, either as row dicts (text formats) or as columns (Arrow formats)."""

    path: Path
    rows: list[dict] | None = None
    lines: list[int] | None = None  # line number of each row, for error messages
    columns: dict[str, list] | None = None
    names: list[str] = field(default_factory=list)

    def __len__(self):
        return len(self.rows) if self.rows is not None else len(next(iter(self.columns.values()), []))

    def column(self, name: str) -> list:
        if self.rows is not None:
            return [r.get(name, MISSING) for r in self.rows]
        if name in self.columns:
            return self.columns[name]
        return [MISSING] * len(self)


class Records:
    """Records from one or more files, read column by column, with each record's origin for error messages."""

    def __init__(self, sources: list[_Source]):
        self.sources = sources
        names: dict[str, None] = {}
        for s in sources:
            names.update(dict.fromkeys(s.names))
        self.names = list(names)
        self._starts = []
        n = 0
        for s in sources:
            self._starts.append(n)
            n += len(s)
        self._len = n

    def __len__(self):
        return self._len

    def column(self, name: str) -> list:
        out: list = []
        for s in self.sources:
            out.extend(s.column(name))
        return out

    def with_columns(self, columns: dict[str, list]) -> Records:
        """New records with these columns; rows keep their origin for error messages when the count holds."""
        n = len(next(iter(columns.values()))) if columns else len(self)
        origin = list(range(n)) if n == len(self) else None
        return _Derived(columns, self, origin, n)

    def select(self, indices: list[int]) -> Records:
        """The records at ``indices`` (in that order), keeping their origin."""
        columns = {name: self.column(name) for name in self.names}
        columns = {name: [col[i] for i in indices] for name, col in columns.items()}
        return _Derived(columns, self, list(indices), len(indices))

    def where(self, index: int) -> str:
        """'example 7 (data/train.jsonl line 8)': how a person finds record ``index``."""
        for s, start in zip(reversed(self.sources), reversed(self._starts), strict=False):
            if index >= start:
                local = index - start
                if s.lines is not None:
                    return f"example {index} ({s.path} line {s.lines[local]})"
                return f"example {index} ({s.path} row {local})"
        return f"example {index}"


class _Derived(Records):
    """Records a data handler produced: their own columns, the origin of each row in the records before."""

    def __init__(self, columns: dict[str, list], parent: Records, origin: list[int] | None, n: int):
        self.sources = []
        self._columns = columns
        self.names = list(columns)
        self._parent, self._origin, self._len = parent, origin, n
        self.trusted_tokens = False  # input_ids/labels made by a built-in tokenizing handler: already checked

    def column(self, name: str) -> list:
        col = self._columns.get(name)
        return list(col) if col is not None else [MISSING] * self._len

    def where(self, index: int) -> str:
        if self._origin is not None and 0 <= index < len(self._origin):
            return self._parent.where(self._origin[index])
        return f"example {index}"


def parse_files(files: list[DataFile]) -> Records:
    sources = [_parse(f) for f in files]
    records = Records(sources)
    if len(records) == 0:
        names = ", ".join(str(f.path) for f in files)
        raise DataError(f"no examples in {names}: the data is empty")
    return records


def _parse(f: DataFile) -> _Source:
    ext = f.ext
    if ext in (".json", ".jsonl"):
        return _parse_json(f)
    if ext == ".csv":
        return _parse_csv(f)
    return _parse_arrow(f)


def _decode(f: DataFile) -> str:
    try:
        return f.content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = f.content[: e.start].count(b"\n") + 1
        raise DataError(f"{f.path}: line {line}: not valid UTF-8 text") from None


def _parse_json(f: DataFile) -> _Source:
    text = _decode(f)
    stripped = text.strip()
    if f.ext == ".json" and stripped.startswith("["):
        return _parse_json_array(f, text)
    if f.ext == ".json" and stripped.startswith("{") and "\n" in stripped:
        # One pretty-printed object, or JSON Lines in a .json file: only the latter parses line by line.
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            keys = ", ".join(repr(k) for k in list(whole)[:5])
            raise DataError(
                f"{f.path}: the file is one JSON object (keys {keys}); expected a list of records "
                f"or one record per line"
            )
    # JSON Lines (a .json file with one object per line is accepted too, as `datasets` does).
    rows, lines, names = [], [], {}
    loads = json.loads
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{f.path}: line {lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{f.path}: line {lineno}: expected a JSON object, got {type(row).__name__}")
        if len(row) != len(names) or not all(k in names for k in row):
            names.update(dict.fromkeys(row))
        rows.append(row)
        lines.append(lineno)
    return _Source(f.path, rows=rows, lines=lines, names=list(names))


def _parse_json_array(f: DataFile, text: str) -> _Source:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{f.path}: line {e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    names: dict[str, None] = {}
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{f.path}: item {i} of the list: expected a JSON object, got {type(row).__name__}")
        names.update(dict.fromkeys(row))
    return _Source(f.path, rows=data, lines=None, names=list(names))


def _parse_csv(f: DataFile) -> _Source:
    reader = csv.DictReader(io.StringIO(_decode(f), newline=""))
    rows, lines = [], []
    try:
        for row in reader:
            if None in row:
                raise DataError(f"{f.path}: line {reader.line_num}: more values than the header has columns")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{f.path}: line {reader.line_num}: malformed CSV ({e})") from None
    return _Source(f.path, rows=rows, lines=lines, names=list(reader.fieldnames or []))


def _parse_arrow(f: DataFile) -> _Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ext = f.ext
    try:
        if ext == ".parquet":
            table = pq.read_table(pa.BufferReader(f.content))
        else:
            try:  # `datasets` writes the stream format; pyarrow's default is the file format
                table = pa.ipc.open_stream(pa.BufferReader(f.content)).read_all()
            except pa.ArrowInvalid:
                table = pa.ipc.open_file(pa.BufferReader(f.content)).read_all()
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"cannot read {f.path} as {ext[1:]}: {e}") from None
    columns: dict[str, Any] = {name: table.column(name).to_pylist() for name in table.column_names}
    return _Source(f.path, columns=columns, names=list(table.column_names))
