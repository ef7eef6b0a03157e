"""Every supported file type, directories and globs, and a clear message for each kind of unreadable input."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuning_core.data import prepare_datasets
from tuning_core.errors import DataError

from .helpers import config, write_jsonl

ROWS = [
    {"input": "### Input: a ### Output:", "output": "complaint"},
    {"input": "### Input: b ### Output:", "output": "no complaint"},
]


def write(path: Path, rows=ROWS) -> Path:
    ext = path.suffix
    table = pa.Table.from_pylist(rows)
    if ext == ".jsonl":
        write_jsonl(path, rows)
    elif ext == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif ext == ".parquet":
        pq.write_table(table, path)
    elif ext == ".arrow":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    elif ext == ".csv":
        import csv

        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return path


def process(tokenizer, path, **flags):
    return prepare_datasets(config(training_data_path=str(path), **flags), tokenizer)


@pytest.fixture(scope="module")
def reference(bpe_tok, tmp_path_factory):
    return process(bpe_tok, write(tmp_path_factory.mktemp("ref") / "ref.jsonl")).train.to_dict()


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".parquet", ".arrow", ".csv"])
def test_every_file_type_gives_the_same_examples(tmp_path, bpe_tok, reference, ext):
    out = process(bpe_tok, write(tmp_path / f"train{ext}"))
    assert out.train.to_dict() == reference


def test_arrow_file_format_too(tmp_path, bpe_tok, reference):
    table = pa.Table.from_pylist(ROWS)
    path = tmp_path / "train.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    assert process(bpe_tok, path).train.to_dict() == reference


def test_directory_and_glob_read_all_files_in_order(tmp_path, bpe_tok, reference):
    write(tmp_path / "a.jsonl", ROWS[:1])
    write(tmp_path / "b.parquet", ROWS[1:])
    (tmp_path / ".hidden.jsonl").write_text("not json")
    (tmp_path / "README.md").write_text("ignored in a directory")
    assert process(bpe_tok, tmp_path).train.to_dict() == reference
    assert process(bpe_tok, tmp_path / "*.jsonl").stats["num_examples"] == 1
    assert process(bpe_tok, str(tmp_path / "[ab].*")).train.to_dict() == reference


def test_validation_data(tmp_path, bpe_tok, reference):
    train = write(tmp_path / "train.jsonl")
    val = write(tmp_path / "val.csv", ROWS[1:])
    out = prepare_datasets(config(training_data_path=str(train), validation_data_path=str(val)), bpe_tok)
    assert out.eval["input_ids"] == reference["input_ids"][1:] and out.eval["labels"] == reference["labels"][1:]
    assert out.stats["eval"]["num_examples"] == 1


@pytest.mark.parametrize(
    "content,line,what",
    [
        ('{"input": "a", "output": "b"}\n{"input": "a", "output": }\n', 2, "malformed JSON"),
        ('{"input": "a", "output": "b"}\n\n{"input": "a", "output": "b"}\n[1, 2]\n', 4, "expected a JSON object"),
        ('{"input": "a", "output": "b"}\n{"input": "a", "output": "b"', 2, "malformed JSON"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, bpe_tok, content, line, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=rf"bad.jsonl: line {line}: {what}") as e:
        process(bpe_tok, path)
    assert e.value.exit_code == 1


def test_malformed_json_array_names_file_and_line(tmp_path, bpe_tok):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"input": "a", "output": "b"},\n  {"input": "a" "output": "b"}\n]\n')
    with pytest.raises(DataError, match=r"bad.json: line 3: malformed JSON \(Expecting ',' delimiter"):
        process(bpe_tok, path)


def test_json_file_with_one_object_per_line_is_accepted(tmp_path, bpe_tok, reference):
    path = write_jsonl(tmp_path / "lines.json", ROWS)
    assert process(bpe_tok, path).train.to_dict() == reference


def test_single_json_object_is_explained(tmp_path, bpe_tok):
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"data": ROWS}, indent=2))
    with pytest.raises(DataError, match=r"obj.json: the file is one JSON object \(keys 'data'\); expected a list"):
        process(bpe_tok, path)


def test_not_utf8(tmp_path, bpe_tok):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"input": "a", "output": "b"}\n{"input": "caf\xe9", "output": "b"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl: line 2: not valid UTF-8"):
        process(bpe_tok, path)


@pytest.mark.parametrize(
    "name,content",
    [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("empty.json", "[]"), ("header.csv", "input,output\n")],
)
def test_empty_data(tmp_path, bpe_tok, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"no examples in .*{name}: the data is empty"):
        process(bpe_tok, path)


def test_unknown_extension(tmp_path, bpe_tok):
    path = tmp_path / "train.txt"
    path.write_text("hello")
    with pytest.raises(
        DataError,
        match=r"train.txt: unsupported file extension '.txt'; expected one of .json, "
        r".jsonl, .parquet, .arrow, .csv",
    ):
        process(bpe_tok, path)


def test_missing_path_directory_and_glob(tmp_path, bpe_tok):
    with pytest.raises(DataError, match=r"--training_data_path .*nope.jsonl: no such file or directory"):
        process(bpe_tok, tmp_path / "nope.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: the directory has no data files"):
        process(bpe_tok, tmp_path / "empty")
    with pytest.raises(DataError, match=r"\*.parquet: the pattern matches no files"):
        process(bpe_tok, tmp_path / "*.parquet")
    with pytest.raises(DataError, match=r"--validation_data_path .*val.jsonl: no such file"):
        prepare_datasets(
            config(
                training_data_path=str(write(tmp_path / "t.jsonl")), validation_data_path=str(tmp_path / "val.jsonl")
            ),
            bpe_tok,
        )


def test_unreadable_file(tmp_path, bpe_tok, monkeypatch):
    path = write(tmp_path / "locked.jsonl")
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads everything: simulate the refusal the OS would give another user
        real = Path.read_bytes

        def refuse(self):
            if self.name == "locked.jsonl":
                raise PermissionError(13, "Permission denied")
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError, match=r"cannot read .*locked.jsonl: Permission denied"):
        process(bpe_tok, path)


@pytest.mark.parametrize("ext", [".parquet", ".arrow"])
def test_corrupt_binary_file(tmp_path, bpe_tok, ext):
    path = tmp_path / f"bad{ext}"
    path.write_bytes(b"this is not " + ext.encode())
    with pytest.raises(DataError, match=rf"cannot read .*bad{ext} as {ext[1:]}"):
        process(bpe_tok, path)


def test_csv_row_with_extra_values(tmp_path, bpe_tok):
    path = tmp_path / "bad.csv"
    path.write_text("input,output\na,b\nc,d,e\n")
    with pytest.raises(DataError, match=r"bad.csv: line 3: more values than the header has columns"):
        process(bpe_tok, path)
