"""Resolve `--tasks` into lm-eval task configs, offline and before any model loads.

A task is a path to an lm-eval task YAML, a folder of them, or the name of a task
in one of those. YAMLs are read with yaml.safe_load (no ``!function`` code) and
their relative ``data_files`` are made relative to the YAML, not the cwd. A task
that needs a hub download (one of lm-eval's bundled tasks, or a YAML whose
``dataset_path`` is a hub dataset) fails with one line pointing to docs/eval.md.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tuning_core.plugin_api import ConfigError

DOCS = "docs/eval.md"
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}  # datasets' packaged loaders read local files
OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE")


@dataclass
class LocalTask:
    name: str
    config: dict  # the YAML, data paths made absolute: what lm-eval's TaskManager loads
    source: Path


def go_offline() -> None:
    """Nothing here may reach a hub (and hang on a machine without internet) unless the user said otherwise."""
    for var in OFFLINE_VARS:
        os.environ.setdefault(var, "1")


def online_allowed() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE", "1").strip().lower() in ("0", "false", "no")


def parse_task_list(value: str | list[str], flag: str = "--tasks") -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
    if not names:
        raise ConfigError(f"{flag}: expected task names or task YAML paths, got nothing")
    return names


def resolve_tasks(specs: list[str], search_dirs: list[Path] = (), flag: str = "--tasks") -> list[LocalTask | str]:
    """Local tasks as LocalTask; lm-eval's own task names (only when downloads are allowed) as str."""
    resolved: list[LocalTask | str] = []
    named: list[str] = []
    for spec in specs:
        path = Path(spec)
        if spec.endswith((".yaml", ".yml")) or os.sep in spec or path.is_dir():
            if not path.exists():
                raise ConfigError(f"{flag}: {spec}: no such task YAML or folder")
            resolved.extend(_load_path(path, flag))
        else:
            named.append(spec)
    if named:
        local = {t.name: t for d in search_dirs for t in _load_path(Path(d), flag)}
        local.update({t.name: t for t in resolved if isinstance(t, LocalTask)})
        for name in named:
            if name in local:
                resolved.append(local[name])
                continue
            builtin = builtin_task_names()
            if name in builtin:
                if not online_allowed():
                    raise ConfigError(
                        f"{flag}: task '{name}' is one of lm-eval's hub tasks and needs a dataset "
                        f"download, and tuning-core eval runs offline; use a local task YAML "
                        f"(see {DOCS}) or set HF_DATASETS_OFFLINE=0"
                    )
                resolved.append(name)
                continue
            close = difflib.get_close_matches(name, list(local) + sorted(builtin), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; pass a task YAML or folder (see {DOCS})"
            raise ConfigError(f"{flag}: unknown task '{name}'{hint}")
    seen = set()
    for task in resolved:
        name = task.name if isinstance(task, LocalTask) else task
        if name in seen:
            raise ConfigError(f"{flag}: task '{name}' is given twice")
        seen.add(name)
    return resolved


def _load_path(path: Path, flag: str) -> list[LocalTask]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise ConfigError(f"{flag}: {path} holds no task YAML files")
        return [_load_yaml(f, flag) for f in files]
    return [_load_yaml(path, flag)]


def _load_yaml(path: Path, flag: str) -> LocalTask:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(
            f"{flag}: {path} line {e.problem_mark.line + 1}: {e.problem.split(' for')[0]} "
            f"(task YAMLs are read with yaml.safe_load: no !function code; see {DOCS})"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{flag}: cannot read {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ConfigError(f"{flag}: {path} is not an lm-eval task YAML (no 'task:' name)")
    if "include" in config or "group" in config or "task_list" in config:
        raise ConfigError(
            f"{flag}: {path}: 'include'/'group' YAMLs are not supported; write one "
            f"self-contained YAML per task (see {DOCS})"
        )
    _check_dataset(config, path, flag)
    return LocalTask(config["task"], config, path)


def _check_dataset(config: dict, path: Path, flag: str) -> None:
    dataset = str(config.get("dataset_path") or "")
    if dataset in LOCAL_BUILDERS:
        files = (config.get("dataset_kwargs") or {}).get("data_files")
        if not files:
            raise ConfigError(f"{flag}: {path}: dataset_path {dataset} needs dataset_kwargs.data_files")
        config.setdefault("dataset_kwargs", {})["data_files"] = _absolute(files, path, flag)
        return
    local = Path(dataset) if Path(dataset).is_absolute() else path.parent / dataset
    if dataset and local.exists():
        config["dataset_path"] = str(local.resolve())
        return
    if not online_allowed():
        raise ConfigError(
            f"{flag}: {path}: dataset_path '{dataset}' is a hub dataset that needs a download, and "
            f"tuning-core eval runs offline; point the task at local files (see {DOCS})"
        )


def _absolute(files, yaml_path: Path, flag: str):
    if isinstance(files, dict):
        return {split: _absolute(f, yaml_path, flag) for split, f in files.items()}
    if isinstance(files, list):
        return [_absolute(f, yaml_path, flag) for f in files]
    if re.match(r"^[a-z]+://", str(files)):
        raise ConfigError(f"{flag}: {yaml_path}: data file {files} is remote; use a local file (see {DOCS})")
    p = Path(str(files))
    p = p if p.is_absolute() else (yaml_path.parent / p)
    if not p.is_file():
        raise ConfigError(f"{flag}: {yaml_path}: data file {p} does not exist")
    return str(p.resolve())


_TASK_LINE = re.compile(r"^(?:task|group|tag):\s*[\"']?([^\s\"'#]+)", re.MULTILINE)


def builtin_task_names() -> set[str]:
    """lm-eval's bundled task names, from a text scan of its YAMLs (indexing them properly takes ~45 s)."""
    import lm_eval.tasks

    names: set[str] = set()
    for f in Path(lm_eval.tasks.__file__).parent.rglob("*.yaml"):
        try:
            names.update(_TASK_LINE.findall(f.read_text(encoding="utf-8", errors="ignore")))
        except OSError:
            continue
    return names


def task_manager(tasks: list[LocalTask | str]):
    """An lm-eval TaskManager; the slow index of lm-eval's own tasks only when one of them is asked for."""
    from lm_eval.tasks import TaskManager

    return TaskManager(verbosity="ERROR", include_defaults=any(isinstance(t, str) for t in tasks))


def lm_eval_specs(tasks: list[LocalTask | str]) -> list[dict | str]:
    return [dict(t.config) if isinstance(t, LocalTask) else t for t in tasks]
