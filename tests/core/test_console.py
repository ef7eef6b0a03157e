"""What a plain `tuning-core train` prints, and how fast `train --help` answers."""

import json
import os
import subprocess
import sys

import pytest

from tuning_core.config.fields import FieldSpec
from tuning_core.console import wants_debug

from .helpers import cli, train_args

# atexit: `--help` leaves through SystemExit
PROBE = (
    "import atexit, sys; from tuning_core.cli import run; "
    "atexit.register(lambda: print('LOADED', [m for m in ('torch', 'transformers', 'bitsandbytes') "
    "if sys.modules.get(m) is not None])); sys.exit(run(sys.argv[1:]))"
)


def run_cli_probe(*args, env=None, timeout=900):
    """`tuning-core ARGS` in a fresh process, reporting which heavy libraries it imported."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.mark.slow
def test_tuning_core_optional_backends_plain_lora_run_is_quiet(tiny_llama, twitter_data, tmp_path):
    """Banner, progress and loss lines only: no library warnings, and bitsandbytes never imported."""
    args = train_args(tiny_llama, twitter_data, tmp_path / "out", "--peft_method", "lora", steps=2, batch=4)
    args[args.index("--disable_tqdm") + 1] = "false"
    done = run_cli_probe("train", *args, env={"TUNING_CORE_PLUGINS": "peft_gptq,packing,fused_ops"})
    assert done.returncode == 0, done.stderr[-3000:]
    noisy = [line for line in done.stderr.splitlines() if "Warning" in line or "[transformers]" in line]
    assert noisy == [], noisy
    assert "LOADED ['torch', 'transformers']" in done.stdout  # peft would have pulled bitsandbytes in
    assert "'loss'" in done.stdout


def test_debug_switch_shows_library_warnings():
    code = (
        "import warnings, sys; from tuning_core.console import quiet_libraries; quiet_libraries(sys.argv[1:]); "
        "warnings.warn_explicit('library says hi', UserWarning, 'x.py', 1, module='transformers.x')"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TUNING_CORE_DEBUG"},
    )
    loud = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TUNING_CORE_DEBUG": "1"}
    )
    flagged = subprocess.run(
        [sys.executable, "-c", code, "train", "--log_level", "info"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TUNING_CORE_DEBUG"},
    )
    assert "library says hi" not in quiet.stderr
    assert "library says hi" in loud.stderr and "library says hi" in flagged.stderr


@pytest.mark.parametrize(
    "argv, env, expected",
    [
        ([], {}, False),
        (["--log_level", "debug"], {}, True),
        (["--log_level=info"], {}, True),
        (["--log_level", "warning"], {}, False),
        ([], {"TUNING_CORE_DEBUG": "1"}, True),
    ],
)
def test_wants_debug(argv, env, expected):
    assert wants_debug(argv, env) is expected


def test_train_help_with_a_warm_cache_imports_neither_torch_nor_transformers(tmp_path):
    env = {"TUNING_CORE_CACHE": str(tmp_path / "cache")}
    cold = run_cli_probe("train", "--help", env=env)
    assert cold.returncode == 0 and "--per_device_train_batch_size" in cold.stdout
    assert list((tmp_path / "cache" / "flags").glob("training_arguments-transformers-*.json"))
    warm = run_cli_probe("train", "--help", env=env)
    assert warm.returncode == 0
    assert "LOADED []" in warm.stdout
    assert _flags(warm.stdout) == _flags(cold.stdout)


def _flags(help_text: str) -> set[str]:
    return {w.rstrip(",") for w in help_text.split() if w.startswith("--")}


def test_cached_training_specs_equal_the_fresh_ones(tmp_path, monkeypatch):
    from tuning_core.config import spec_cache, training_args

    monkeypatch.setenv("TUNING_CORE_CACHE", str(tmp_path))
    fresh = training_args.training_specs(set())
    files = list((tmp_path / "flags").glob("*.json"))
    assert len(files) == 1
    cached = training_args.training_specs(set())
    assert [_row(s) for s in cached] == [_row(s) for s in fresh]
    assert cached[0].owner is training_args.TrainingArguments  # read back: no transformers class behind it
    by_name = {s.name: s for s in cached}
    assert by_name["save_strategy"].default == "epoch" and by_name["logging_steps"].default == 1
    files[0].write_text("{not json")  # a damaged cache is rebuilt, not trusted
    assert [_row(s) for s in training_args.training_specs(set())] == [_row(s) for s in fresh]
    assert json.loads(files[0].read_text())[0]["name"] == fresh[0].name
    assert spec_cache.FORMAT >= 1


def _row(spec: FieldSpec):
    return (spec.name, spec.scalar, spec.is_list, spec.optional, spec.default, spec.help, spec.choices, spec.aliases)


def test_lora_r_is_an_alias_of_r(tmp_path):
    from tuning_core.config import load_train_config

    config = load_train_config(["--output_dir", str(tmp_path), "--peft_method", "lora", "--lora_r", "4"])
    assert config.r == 4
    done = cli("train", "--output_dir", tmp_path, "--r", "4", "--lora_r", "8", "--help")
    assert done.returncode == 0 and "--lora_r" in done.stdout
