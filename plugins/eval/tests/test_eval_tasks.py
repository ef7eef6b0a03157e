"""Resolving --tasks offline: local YAMLs by path, folder or name; one-line errors for the rest."""

import json

import pytest

from tuning_core.plugin_api import ConfigError
from tuning_core_eval.tasks import (
    LocalTask,
    builtin_task_names,
    parse_task_list,
    resolve_tasks,
)


def test_bundled_tasks_by_folder_file_and_name(tasks_dir):
    by_folder = resolve_tasks([str(tasks_dir)])
    assert sorted(t.name for t in by_folder) == ["twitter_complaints_choice", "twitter_complaints_label"]
    by_file = resolve_tasks([str(tasks_dir / "twitter_complaints_label.yaml")])
    by_name = resolve_tasks(["twitter_complaints_label"], search_dirs=[tasks_dir])
    assert by_file[0].config == by_name[0].config
    # data_files are resolved against the YAML's folder, not the cwd
    data = by_name[0].config["dataset_kwargs"]["data_files"]["test"]
    assert data == str((tasks_dir / "twitter_complaints_test.jsonl").resolve())


def test_parse_task_list_accepts_commas_and_lists():
    assert parse_task_list("a, b,c") == ["a", "b", "c"]
    assert parse_task_list(["a,b", "c"]) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="--tasks"):
        parse_task_list(" , ")


def test_unknown_task_suggests_the_closest(tasks_dir):
    with pytest.raises(
        ConfigError, match="unknown task 'twitter_complaints_lable'; did you mean 'twitter_complaints_label'"
    ):
        resolve_tasks(["twitter_complaints_lable"], search_dirs=[tasks_dir])


def test_hub_task_fails_fast_and_points_to_the_docs(monkeypatch, tasks_dir):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert "hellaswag" in builtin_task_names()
    with pytest.raises(ConfigError, match=r"task 'hellaswag' is one of lm-eval's hub tasks.*docs/eval.md"):
        resolve_tasks(["hellaswag"], search_dirs=[tasks_dir])


def test_yaml_with_hub_dataset_or_code_is_refused(tmp_path):
    hub = tmp_path / "hub.yaml"
    hub.write_text("task: mine\ndataset_path: cais/mmlu\noutput_type: multiple_choice\n")
    with pytest.raises(ConfigError, match="dataset_path 'cais/mmlu' is a hub dataset.*docs/eval.md"):
        resolve_tasks([str(hub)])
    code = tmp_path / "code.yaml"
    code.write_text("task: mine\ndataset_path: json\ndoc_to_text: !function utils.doc_to_text\n")
    with pytest.raises(ConfigError, match=r"code.yaml line 3: .*safe_load"):
        resolve_tasks([str(code)])
    missing = tmp_path / "missing.yaml"
    missing.write_text("task: mine\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: nope.jsonl\n")
    with pytest.raises(ConfigError, match="data file .*nope.jsonl does not exist"):
        resolve_tasks([str(missing)])


def test_user_task_yaml_runs_through_lm_eval_task_manager(tmp_path):
    """A user's YAML in another folder, with a relative data file, builds into an lm-eval task with its docs."""
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(3)))
    (tmp_path / "t.yaml").write_text(
        "task: my_qa\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\n"
        "metric_list:\n  - metric: exact_match\n"
    )
    from tuning_core_eval.tasks import lm_eval_specs, task_manager

    tasks = resolve_tasks([str(tmp_path)])
    assert isinstance(tasks[0], LocalTask)
    from lm_eval.tasks import get_task_dict

    built = get_task_dict(lm_eval_specs(tasks), task_manager(tasks))
    task = built["my_qa"]
    assert [task.doc_to_target(d) for d in task.test_docs()] == ["a0", "a1", "a2"]
