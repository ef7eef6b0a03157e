"""Every user mistake of issue 16 ends in one line on stderr and exit code 2 (1 for data files), never a traceback.

The cases run through the CLI's own entry point (tuning_core.cli.main) in-process, where a
traceback would surface as an exception; a few also run as real processes, and everything
that fails before the model loads is checked to do so (no model load is attempted).
"""

import contextlib
import json
import os
import pickle
import shutil
import sys

import pytest

from tuning_core.cli import main
from tuning_core.plugin_api import hookimpl
from tuning_core.plugins import get_plugin_manager
from tuning_core.run_lock import output_dir_lock
from tuning_core.testing.faults import write_faults

from .helpers import cli, train_args


class LoadSpy:
    """Records model-load attempts and passes on to the real loader."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def tuning_core_load_model(self, config, purpose):
        self.calls.append(purpose)


class _Payload:
    """A pickle that would run code when unpickled without weights_only."""

    def __reduce__(self):
        return (print, ("payload ran",))


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _base(m, d, out, *extra):
    return ["train", *train_args(m, d, out, "--peft_method", "lora", *extra, steps=1, batch=2)]


def _pickle_model(tmp, m):
    bad = tmp / "pickled_model"
    bad.mkdir()
    for f in m.iterdir():
        if f.suffix != ".safetensors" and f.is_file():
            shutil.copy(f, bad / f.name)
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload()}))
    return bad


def _pretok(tmp, rows):
    return _write_jsonl(tmp / "tok.jsonl", rows)


def _pretok_train(tmp, m, rows):
    return [
        "train",
        "--model_name_or_path",
        m,
        "--training_data_path",
        _pretok(tmp, rows),
        "--output_dir",
        tmp / "o",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "1",
        "--save_strategy",
        "no",
    ]


def _deep_json(tmp):
    p = tmp / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    return p


def _alias_bomb(tmp):
    lines = ["learning_rate:", '  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"  - &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    p = tmp / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def _held_lock(out):
    out.mkdir(exist_ok=True)
    return output_dir_lock(str(out))


def _disk_full(out):
    return write_faults(out, at=12 + 3, action="enospc")  # the 3rd write of the 2nd save (a save is 12 writes)


# id -> (build(tmp, model, data) -> (argv, context or None), expected text in the message)
CASES = {
    "config-not-utf8": (
        lambda t, m, d: (["train", "--config", _bytes(t / "c.json", b'{"r": "\xff\xfe"}')], None),
        "not UTF-8",
    ),
    "config-nested-100k": (lambda t, m, d: (["train", "--config", _deep_json(t)], None), "nested too deeply"),
    "yaml-alias-bomb": (lambda t, m, d: (["train", "--config", _alias_bomb(t)], None), "learning_rate"),
    "pickle-only-weights": (lambda t, m, d: (_base(_pickle_model(t, m), d, t / "o"), None), "pickled"),
    "disk-full-during-save": (
        lambda t, m, d: (
            _base(m, d, t / "o", "--save_strategy", "steps", "--save_steps", "1", "--max_steps", "2"),
            _disk_full(t / "o"),
        ),
        (
            "checkpoint-2 failed (No space left on device); it is incomplete and will not be "
            "resumed from; the last intact checkpoint is"
        ),
    ),
    "batch-size-0": (lambda t, m, d: (_base(m, d, t / "o", "--per_device_train_batch_size", "0"), None), ">= 1"),
    "learning-rate-negative": (lambda t, m, d: (_base(m, d, t / "o", "--learning_rate", "-1"), None), ">= 0"),
    "learning-rate-nan": (lambda t, m, d: (_base(m, d, t / "o", "--learning_rate", "nan"), None), "got nan"),
    "epochs-negative": (
        lambda t, m, d: (_base(m, d, t / "o", "--max_steps", "-1", "--num_train_epochs", "-1"), None),
        "num_train_epochs",
    ),
    "max-steps-0": (lambda t, m, d: (_base(m, d, t / "o", "--max_steps", "0"), None), "-1 (train for"),
    "output-dir-is-a-file": (lambda t, m, d: (_base(m, d, _bytes(t / "f", b"x")), None), "not a directory"),
    "output-dir-not-writable": (lambda t, m, d: (_base(m, d, "/sys/tuning_core_test_out"), None), "cannot create"),
    "save-model-dir-is-a-file": (
        lambda t, m, d: (_base(m, d, t / "o", "--save_model_dir", _bytes(t / "f", b"x")), None),
        "not a directory",
    ),
    "save-model-dir-not-writable": (
        lambda t, m, d: (_base(m, d, t / "o", "--save_model_dir", "/sys/tuning_core_test/final"), None),
        "not writable",
    ),
    "missing-data-file": (lambda t, m, d: (_base(m, t / "nope.jsonl", t / "o"), None), "no such file"),
    "missing-validation-file": (
        lambda t, m, d: (_base(m, d, t / "o", "--validation_data_path", t / "nope.jsonl"), None),
        "--validation_data_path",
    ),
    "lora-flag-without-lora": (
        lambda t, m, d: (_base(m, d, t / "o", "--r", "8", "--peft_method", "none"), None),
        "does nothing with --peft_method none",
    ),
    "output-dir-locked": (lambda t, m, d: (_base(m, d, t / "o"), _held_lock(t / "o")), "in use by another run"),
    "input-ids-outside-vocab": (
        lambda t, m, d: (_pretok_train(t, m, [{"input_ids": [1, 999999]}]), None),
        "holds 999999, outside",
    ),
    "input-ids-negative": (lambda t, m, d: (_pretok_train(t, m, [{"input_ids": [1, -5]}]), None), "holds -5, outside"),
    "labels-outside-vocab": (
        lambda t, m, d: (_pretok_train(t, m, [{"input_ids": [1, 2], "labels": [-100, 70000]}]), None),
        "'labels' holds 70000",
    ),
    "preview-ids-outside-vocab": (
        lambda t, m, d: (
            [
                "data",
                "preview",
                "--model_name_or_path",
                m,
                "--training_data_path",
                _pretok(t, [{"input_ids": [999999]}]),
            ],
            None,
        ),
        "outside the vocabulary",
    ),
}

# Found only by loading the model, training, or processing the data (after the tokenizer loads).
LATE = {
    "pickle-only-weights",
    "disk-full-during-save",
    "input-ids-outside-vocab",
    "input-ids-negative",
    "labels-outside-vocab",
}

# DataError keeps the data pipeline's exit code 1; found up front now, with the same message.
DATA_ERRORS = {"missing-data-file", "missing-validation-file"}

QUANTIZE_CASES = {
    "quantize-num-samples-0": (["--num_samples", "0"], "expected a positive integer"),
    "quantize-damp-negative": (["--damp_percent", "-1"], "expected a fraction"),
    "quantize-malformed-calibration": (["--calibration_data", "{bad}"], "line 2 is not valid JSON"),
    "quantize-over-existing-model": (["--output_dir", "{occupied}"], "--overwrite"),
}


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _run(argv, capfd):
    code = main([str(a) for a in argv])
    err = capfd.readouterr().err
    return code, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistake_is_one_line_and_exit_2(case, tiny_llama, twitter_data, tmp_path, capfd):
    build, expected = CASES[case]
    argv, context = build(tmp_path, tiny_llama, twitter_data)
    spy = LoadSpy()
    pm = get_plugin_manager()
    pm.register(spy, name="load_spy")
    try:
        with context or contextlib.nullcontext():
            code, err = _run(argv, capfd)
    finally:
        pm.unregister(spy)
    assert code == (1 if case in DATA_ERRORS else 2), err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tuning-core: error:")]
    assert len(lines) == 1 and expected in lines[0], err[-3000:]
    assert len(lines[0]) < 600  # echoed values are capped (the alias bomb expands to 387 million characters)
    if case not in LATE:
        assert not spy.calls  # failed before the model load was even tried


@pytest.mark.parametrize("case", sorted(QUANTIZE_CASES))
def test_quantize_mistake_is_one_line_and_exit_2(case, tiny_llama, tmp_path, capfd, plugins_enabled):
    plugins_enabled("peft_gptq")
    extra, expected = QUANTIZE_CASES[case]
    bad = tmp_path / "cal.jsonl"
    bad.write_text('{"output": "fine"}\n{"output": \n')
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "model.safetensors").write_bytes(b"keep me")
    extra = [str(x).format(bad=bad, occupied=occupied) for x in extra]
    argv = [
        "quantize",
        "--model_name_or_path",
        tiny_llama,
        "--output_dir",
        tmp_path / "q",
        "--num_samples",
        "2",
        "--seq_len",
        "8",
        *extra,
    ]
    code, err = _run(argv, capfd)
    assert code == (1 if case == "quantize-over-existing-model" else 2), err[-3000:]  # 1: as merge refuses
    assert "Traceback" not in err and err.count("tuning-core: error:") == 1 and expected in err, err[-3000:]
    assert (occupied / "model.safetensors").read_bytes() == b"keep me"


@pytest.mark.parametrize("case", ["config-not-utf8", "output-dir-locked"])
def test_real_process(case, tiny_llama, twitter_data, tmp_path):
    """The same through a real process: exit status 2, no traceback, one error line."""
    argv, context = CASES[case][0](tmp_path, tiny_llama, twitter_data)
    with context or contextlib.nullcontext():
        proc = cli(*argv)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("tuning-core: error:")] == [
        f"tuning-core: error: {proc.stderr.split('tuning-core: error: ', 1)[1].strip()}"
    ]
    assert CASES[case][1] in proc.stderr


def test_stale_lock_of_a_dead_run_is_taken_over(tiny_llama, twitter_data, tmp_path):
    """A lock file left by a killed run (no process holds it) does not block the next run."""
    import subprocess

    out = tmp_path / "o"
    out.mkdir()
    code = (
        f"import os\nfrom tuning_core.run_lock import output_dir_lock\nwith output_dir_lock({str(out)!r}): os._exit(9)"
    )
    dead = subprocess.run([sys.executable, "-c", code], timeout=120, check=False)
    assert dead.returncode == 9 and (out / ".tuning_core.lock").read_text().startswith("pid ")
    with output_dir_lock(str(out)) as held:
        assert held == out / ".tuning_core.lock" and held.read_text().startswith(f"pid {os.getpid()} ")
    assert not held.exists()  # a clean exit leaves no lock file


def test_quantize_overwrite_replaces_the_model_atomically(tiny_llama, tmp_path, capfd, plugins_enabled):
    plugins_enabled("peft_gptq")
    out = tmp_path / "q"
    out.mkdir()
    (out / "stale.bin").write_bytes(b"old")
    argv = [
        "quantize",
        "--model_name_or_path",
        tiny_llama,
        "--output_dir",
        out,
        "--num_samples",
        "2",
        "--seq_len",
        "8",
        "--group_size",
        "32",
        "--overwrite",
    ]
    code, err = _run(argv, capfd)
    assert code == 0, err[-3000:]
    assert (out / "quantize_config.json").is_file() and not (out / "stale.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # no staging or old folder left behind


def test_lora_key_in_a_config_file_only_warns(tiny_llama, twitter_data, tmp_path, caplog):
    """Shared fms-hf-tuning configs carry LoRA keys for every method: from a file, a warning, not an error."""
    from tuning_core.config import load_train_config
    from tuning_core.preflight import check_unused_settings

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"r": 16, "lora_alpha": 8, "peft_method": "none"}))
    config = load_train_config(
        [
            "--config",
            str(cfg),
            "--model_name_or_path",
            str(tiny_llama),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    with caplog.at_level("WARNING", logger="tuning_core"):
        check_unused_settings(config)
    assert "'r' is a --peft_method lora setting and does nothing with --peft_method none; ignored" in caplog.text
    assert "lora_alpha" in caplog.text
    config.given["num_virtual_tokens"] = "--num_virtual_tokens"  # a prompt-tuning flag with lora: an error
    config.peft_method = "lora"
    with pytest.raises(Exception, match="'num_virtual_tokens' is a --peft_method pt setting"):
        check_unused_settings(config)
