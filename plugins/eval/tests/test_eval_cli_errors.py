"""Bad input to `tuning-core eval`: one line on stderr, exit code 2, no traceback, before any model loads."""

import os
import subprocess
import sys

import pytest


def _one_line_error(proc, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("tuning-core: error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def model_without_tokenizer(tmp_path_factory, tiny_llama):
    import shutil

    path = tmp_path_factory.mktemp("no_tok")
    for f in tiny_llama.iterdir():
        if "token" not in f.name:
            shutil.copy(f, path / f.name)
    return path


@pytest.mark.parametrize(
    "case",
    ["unknown_task", "hub_task", "limit_0", "missing_data", "no_tokenizer", "missing_model", "compare_full_model"],
)
def test_bad_input_is_one_line_exit_2(case, run_cli, tiny_llama, model_without_tokenizer, tmp_path):
    args = {
        "unknown_task": (
            ["--model", tiny_llama, "--tasks", "twitter_complaints_choise"],
            ["unknown task 'twitter_complaints_choise'", "did you mean 'twitter_complaints_choice'"],
        ),
        "hub_task": (["--model", tiny_llama, "--tasks", "mmlu"], ["needs a dataset download", "docs/eval.md"]),
        "limit_0": (
            ["--model", tiny_llama, "--tasks", "twitter_complaints_label", "--limit", "0"],
            ["--limit 0: expected a positive integer"],
        ),
        "missing_data": (["--model", tiny_llama, "--data", tmp_path / "nope.jsonl"], ["--data", "no such file"]),
        "no_tokenizer": (["--model", model_without_tokenizer, "--tasks", "twitter_complaints_label"], ["no tokenizer"]),
        "missing_model": (
            ["--model", tmp_path / "nope", "--tasks", "twitter_complaints_label"],
            ["--model", "no such directory"],
        ),
        "compare_full_model": (
            ["--model", tiny_llama, "--tasks", "twitter_complaints_label", "--compare_base"],
            ["--compare_base", "--base_model_name_or_path"],
        ),
    }[case]
    proc = run_cli("eval", *args[0], "--output_path", tmp_path / "r.json", timeout=300)
    _one_line_error(proc, *args[1])
    assert not (tmp_path / "r.json").exists()


def test_train_eval_tasks_unknown_task_is_one_line_exit_2(run_cli, tiny_llama, twitter_data, tmp_path):
    proc = run_cli(
        "train",
        "--model_name_or_path",
        tiny_llama,
        "--training_data_path",
        twitter_data,
        "--output_dir",
        tmp_path,
        "--eval_tasks",
        "twitter_complaints_labl",
        timeout=300,
        env={"PYTHONWARNINGS": "ignore::FutureWarning"},
    )  # transformers' own deprecation notice
    _one_line_error(proc, "--eval_tasks", "did you mean 'twitter_complaints_label'")


def test_without_the_plugin_the_hint_names_the_extra(run_cli, tiny_llama):
    proc = run_cli("eval", "--model", tiny_llama, plugins="", timeout=300)
    assert proc.returncode == 1 and "pip install 'tuning-core[eval]'" in proc.stderr
    proc = run_cli("train", "--eval_tasks", "x", plugins="", timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("--eval_tasks needs the eval plugin: pip install 'tuning-core[eval]'")


def test_plugin_module_and_eval_help_stay_light(run_cli):
    """The entry point is imported for --help and `plugins`: no torch, transformers or lm_eval there."""
    code = (
        "import sys\nfrom tuning_core.cli import main\ntry:\n    main(['eval', '--help'])\n"
        "except SystemExit:\n    pass\nmain(['plugins'])\n"
        "print('HEAVY', [m for m in ('torch', 'transformers', 'lm_eval') if m in sys.modules])"
    )
    env = dict(os.environ, TUNING_CORE_PLUGINS="eval")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 0 and "HEAVY []" in proc.stdout and "eval  (plugin" in proc.stdout, proc.stderr[-2000:]
    proc = run_cli("eval", "--help", timeout=120)
    assert proc.returncode == 0 and "--compare_base" in proc.stdout and "--eval_tasks" not in proc.stdout
