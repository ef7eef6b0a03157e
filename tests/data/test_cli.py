"""The data commands end to end: `tuning-core data preview`, `train --do_dataprocessing_only`, and every
bad-input case as the user meets it: one clear line on stderr, a non-zero exit code, no traceback."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from tuning_core.cli import main
from tuning_core.data import prepare_datasets

from .helpers import config, write_jsonl

TEMPLATE_ARGS = ["--dataset_text_field", "output", "--response_template", "\\n### Label:"]


@pytest.fixture(autouse=True)
def builtins_only(plugins_enabled):
    plugins_enabled()  # other plugins are not under test here


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def preview(capsys, tok_dir, data, *extra):
    return run_cli(capsys, "data", "preview", "--tokenizer_name_or_path", tok_dir, "--training_data_path", data, *extra)


def test_preview_marks_trained_text_when_piped(capsys, bpe_tokenizer_dir, twitter_data):
    code, out, err = preview(capsys, bpe_tokenizer_dir, twitter_data, *TEMPLATE_ARGS, "-n", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "data: format text_field, 240 examples"
    assert "--- example 0: 16 tokens, 2 trained, 14 masked ---" in lines
    assert "### Label:[[ complaint</s>]]" in lines
    assert "### Text: Customer support is still missing↵" in out
    assert "example 2" not in out and "\x1b[" not in out


def test_preview_colour(capsys, sp_tokenizer_dir, twitter_data):
    code, out, _ = preview(capsys, sp_tokenizer_dir, twitter_data, *TEMPLATE_ARGS, "-n", "1", "--color", "always")
    assert code == 0
    assert "\x1b[90m<s> ### Text: Customer support is still missing↵\n↵\n### Label:\x1b[0m" in out
    assert "\x1b[32m complaint</s>\x1b[0m" in out and "[[" not in out


def test_preview_json_has_the_raw_arrays(capsys, bpe_tok, bpe_tokenizer_dir, twitter_data):
    code, out, _ = preview(capsys, bpe_tokenizer_dir, twitter_data, *TEMPLATE_ARGS, "-n", "3", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    ref = prepare_datasets(
        config(training_data_path=str(twitter_data), dataset_text_field="output", response_template="\\n### Label:"),
        bpe_tok,
    )
    assert [r["input_ids"] for r in rows] == ref.train["input_ids"][:3]
    assert [r["labels"] for r in rows] == ref.train["labels"][:3]
    assert rows[0]["trained_text"] == " complaint</s>" and rows[0]["num_trained"] == 2


def test_dataprocessing_only_writes_parquet_without_loading_weights(
    tmp_path, capsys, bpe_tok, bpe_tokenizer_dir, twitter_data
):
    model_dir = tmp_path / "model"  # tokenizer files only: loading weights would fail
    shutil.copytree(bpe_tokenizer_dir, model_dir)
    val = write_jsonl(tmp_path / "val.jsonl", [{"output": "### Text: a\n\n### Label: b"}])
    out_dir = tmp_path / "out"
    code, out, err = run_cli(
        capsys,
        "train",
        "--model_name_or_path",
        model_dir,
        "--training_data_path",
        twitter_data,
        "--validation_data_path",
        val,
        "--output_dir",
        out_dir,
        *TEMPLATE_ARGS,
        "--do_dataprocessing_only",
    )
    assert code == 0, err
    assert "train_dataset" in out
    train = pq.read_table(out_dir / "train_dataset").to_pydict()
    validation = pq.read_table(out_dir / "validation_dataset").to_pydict()
    ref = prepare_datasets(
        config(
            training_data_path=str(twitter_data),
            validation_data_path=str(val),
            dataset_text_field="output",
            response_template="\\n### Label:",
        ),
        bpe_tok,
    )
    assert set(train) == {"input_ids", "labels"}
    assert train["input_ids"] == ref.train["input_ids"] and train["labels"] == ref.train["labels"]
    assert validation["labels"] == ref.eval["labels"]
    assert not any(p.suffix == ".safetensors" for p in out_dir.rglob("*"))


def _bad_files(tmp_path):
    files = {
        "malformed": "bad.jsonl",
        "io_missing": "io.jsonl",
        "no_template": "nt.jsonl",
        "empty": "empty.jsonl",
        "pretok": "pretok.jsonl",
        "fmt_missing": "fmt.jsonl",
        "chat_missing": "chat.jsonl",
        "unknown": "data.txt",
    }
    p = {k: tmp_path / v for k, v in files.items()}
    p["malformed"].write_text('{"input": "a", "output": "b"}\n{"input": "a", "output": "b",}\n')
    write_jsonl(p["io_missing"], [{"input": "a", "output": "b"}, {"input": "a"}])
    write_jsonl(p["no_template"], [{"output": "x\n### Label: y"}] + [{"output": "no label"}] * 7)
    p["empty"].write_text("")
    write_jsonl(p["pretok"], [{"input_ids": [1, 2, 3]}])
    write_jsonl(p["fmt_missing"], [{"Tweet text": "a", "text_label": "b"}, {"Tweet text": "c"}])
    write_jsonl(p["chat_missing"], [{"messages": [{"role": "user", "content": "a"}]}, {"text": "a"}])
    p["unknown"].write_text("hello")
    return p


FMT = [
    "--data_formatter_template",
    "### Text: {{Tweet text}}\\n### Label: {{text_label}}",
    "--response_template",
    "\\n### Label:",
]

BAD_INPUT = [
    ("malformed", [], 1, "bad.jsonl: line 2: malformed JSON"),
    ("io_missing", [], 1, "example 1 ({io_missing} line 2) has no field 'output'"),
    ("no_template", TEMPLATE_ARGS, 1, "does not occur in 7 of 8 examples, e.g. example 1 ({no_template} line 2)"),
    ("empty", [], 1, "no examples in {empty}: the data is empty"),
    (
        "pretok",
        TEMPLATE_ARGS,
        2,
        "the data is already tokenized (it has 'input_ids'), so --dataset_text_field does not apply",
    ),
    (
        "fmt_missing",
        FMT,
        1,
        "example 1 ({fmt_missing} line 2) has no field 'text_label', which --data_formatter_template needs",
    ),
    (
        "chat_missing",
        ["--chat_template", "{{ messages }}"],
        1,
        "example 1 ({chat_missing} line 2) has no field 'messages'",
    ),
    ("unknown", [], 1, "data.txt: unsupported file extension '.txt'"),
    (
        "io_missing",
        ["--dataset_text_field", "output", "--data_formatter_template", "{{a}}"],
        2,
        "--data_formatter_template and --dataset_text_field are alternatives: give only one",
    ),
    ("io_missing", ["--response_template", "x"], 2, "--response_template needs --dataset_text_field"),
    ("io_missing", ["--max_seq_length", "0"], 2, "--max_seq_length must be at least 1, not 0"),
]


@pytest.mark.parametrize("command", ["preview", "train"])
@pytest.mark.parametrize(
    "case,flags,code,message", BAD_INPUT, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(BAD_INPUT)]
)
def test_bad_input_is_one_clear_message(tmp_path, capsys, bpe_tokenizer_dir, command, case, flags, code, message):
    paths = _bad_files(tmp_path)
    model_dir = tmp_path / "model"
    shutil.copytree(bpe_tokenizer_dir, model_dir)
    if command == "preview":
        args = ["data", "preview", "--model_name_or_path", model_dir]
    else:
        args = [
            "train",
            "--model_name_or_path",
            model_dir,
            "--output_dir",
            tmp_path / "out",
            "--do_dataprocessing_only",
        ]
    got, out, err = run_cli(capsys, *args, "--training_data_path", paths[case], *flags)
    assert got == code
    assert err.startswith("tuning-core: error: ") and err.count("\n") == 1
    assert message.format(**paths) in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "out" / "train_dataset").exists()


@pytest.mark.parametrize("command", [["data", "preview"], ["train", "--output_dir", "o", "--do_dataprocessing_only"]])
def test_missing_training_data_path(capsys, bpe_tokenizer_dir, command):
    code, _, err = run_cli(capsys, *command, "--model_name_or_path", bpe_tokenizer_dir)
    assert code == 2 and "--training_data_path is required" in err


def test_real_process_exit_code_and_no_traceback(tmp_path, bpe_tokenizer_dir):
    """The same path in a real process, as a shell user sees it (once: a process start costs seconds)."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\nnot json\n')
    env = {**os.environ, "TUNING_CORE_PLUGINS": "", "TUNING_CORE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuning_core",
            "data",
            "preview",
            "--tokenizer_name_or_path",
            str(bpe_tokenizer_dir),
            "--training_data_path",
            str(bad),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"tuning-core: error: {bad}: line 2: malformed JSON (Expecting value at column 1)")
