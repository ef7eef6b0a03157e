"""fms-hf-tuning's ``--data_config_path`` files (YAML or JSON), read into typed dataclasses and checked.

The schema and its names are fms-hf-tuning's (its ``tuning/data/data_config.py``). Every problem is one
ConfigError naming the file, the dataset and the key, found before the model loads. The data flags
(--training_data_path ...) are turned into the same structure (``from_flags``), so there is one pipeline.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from tuning_core.errors import ConfigError, DataError

STOPPING_STRATEGIES = ("all_exhausted", "first_exhausted")
SPLITS = ("train", "validation")
BUILDERS = ("json", "jsonl", "parquet", "arrow", "csv")
_PROCESSOR_KEYS = (
    "type",
    "streaming",
    "seed",
    "sampling_stopping_strategy",
    "chat_template",
    "chat_template_path",
    "chat_template_base64",
    "odm",
)
_DATASET_KEYS = ("name", "data_paths", "builder", "sampling", "data_handlers", "split", "dataset_split_name", "shuffle")
_HANDLER_KEYS = ("name", "arguments")


@dataclass
class HandlerSpec:
    name: str
    arguments: dict = field(default_factory=dict)


@dataclass
class DatasetConfig:
    name: str
    data_paths: list[str]
    builder: str | None = None
    sampling: float | None = None
    data_handlers: list[HandlerSpec] = field(default_factory=list)
    split: dict[str, float] | None = None
    dataset_split_name: str | None = None
    shuffle: bool = True
    where: str = ""  # how errors name it: "data.yaml: dataset 'alpaca'" or "--training_data_path"
    flag: str | None = None  # the flag it came from, on the flag path
    auto_format: bool = True  # after the handlers, untokenized data is processed as the data flags say

    def share(self, split: str) -> float:
        if self.split is None:
            return 1.0 if split == "train" else 0.0
        return self.split.get(split, 0.0)


@dataclass
class DataProcessorConfig:
    type: str = "default"
    streaming: bool = False
    seed: int = 42
    sampling_stopping_strategy: str = "all_exhausted"
    chat_template: str | None = None


@dataclass
class DataConfig:
    dataprocessor: DataProcessorConfig
    datasets: list[DatasetConfig]
    path: str | None = None  # the file it was read from; None on the flag path


def from_flags(config) -> DataConfig:
    """The data flags as a one-dataset config (two with --validation_data_path)."""
    datasets = []
    train = getattr(config, "training_data_path", None)
    if train:
        datasets.append(DatasetConfig("training", [train], where="--training_data_path", flag="--training_data_path"))
    val = getattr(config, "validation_data_path", None)
    if val:
        datasets.append(
            DatasetConfig(
                "validation",
                [val],
                split={"validation": 1.0},
                where="--validation_data_path",
                flag="--validation_data_path",
            )
        )
    return DataConfig(DataProcessorConfig(), datasets)


def load_data_config(path: str, handlers: dict | None = None, validation_data_path: str | None = None) -> DataConfig:
    """Read and check ``path``. ``handlers``: the registered handlers by name (checked when given)."""
    from tuning_core.config.parser import read_config_file

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"--data_config_path {path}: no such file")
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"--data_config_path {path}: expected a .yaml, .yml or .json file")
    raw = read_config_file(str(p))
    _unknown(raw, ("dataprocessor", "datapreprocessor", "datasets"), f"{path}")
    processor = _processor(raw.get("dataprocessor", raw.get("datapreprocessor")) or {}, path)
    items = raw.get("datasets")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: 'datasets' must be a non-empty list of datasets")
    datasets = [_dataset(item, i, path, handlers) for i, item in enumerate(items)]
    names = [d.name for d in datasets]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"{path}: two datasets are named '{n}'; names must be unique")
    if validation_data_path:
        datasets.append(
            DatasetConfig(
                "validation",
                [validation_data_path],
                split={"validation": 1.0},
                where="--validation_data_path",
                flag="--validation_data_path",
            )
        )
    config = DataConfig(processor, datasets, str(path))
    check_sampling(config)
    return config


def _unknown(raw: dict, known, where: str) -> None:
    from tuning_core.config.parser import closest

    for key in raw:
        if key not in known:
            near = closest(str(key), known)
            raise ConfigError(
                f"{where}: unknown key '{key}'"
                + (f"; did you mean '{near}'?" if near else f" (known: {', '.join(known)})")
            )


def _processor(raw, path: str) -> DataProcessorConfig:
    where = f"{path}: dataprocessor"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    _unknown(raw, _PROCESSOR_KEYS, where)
    c = DataProcessorConfig()
    kind = raw.get("type", "default")
    if kind == "odm" or "odm" in raw:
        raise ConfigError(
            f"{where}: type 'odm' (online data mixing) is not supported by tuning-core; use "
            f"'default' with per-dataset 'sampling'"
        )
    if kind != "default":
        raise ConfigError(f"{where}.type: expected 'default', got {kind!r}")
    if "streaming" in raw:
        if not isinstance(raw["streaming"], bool):
            raise ConfigError(f"{where}.streaming: expected true or false, got {raw['streaming']!r}")
        c.streaming = raw["streaming"]
    if "seed" in raw:
        if not isinstance(raw["seed"], int) or isinstance(raw["seed"], bool):
            raise ConfigError(f"{where}.seed: expected an integer, got {raw['seed']!r}")
        c.seed = raw["seed"]
    if "sampling_stopping_strategy" in raw:
        s = raw["sampling_stopping_strategy"]
        if s not in STOPPING_STRATEGIES:
            raise ConfigError(
                f"{where}.sampling_stopping_strategy: expected one of {', '.join(STOPPING_STRATEGIES)}, got {s!r}"
            )
        c.sampling_stopping_strategy = s
    given = [k for k in ("chat_template", "chat_template_path", "chat_template_base64") if raw.get(k) is not None]
    if len(given) > 1:
        raise ConfigError(f"{where}: give only one of {', '.join(given)}")
    if given:
        key, value = given[0], raw[given[0]]
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string")
        if key == "chat_template_path":
            tp = Path(value).expanduser()
            if not tp.is_absolute():
                tp = Path(path).parent / tp if not tp.exists() else tp
            if not tp.is_file():
                raise ConfigError(f"{where}.chat_template_path: {value}: no such file")
            value = tp.read_text(encoding="utf-8")
        elif key == "chat_template_base64":
            try:
                value = base64.b64decode(value, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise ConfigError(f"{where}.chat_template_base64: not valid base64 of UTF-8 text") from None
        c.chat_template = value
    return c


def _dataset(raw, index: int, path: str, handlers: dict | None) -> DatasetConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: datasets[{index}]: expected a mapping with 'data_paths'")
    name = raw.get("name", f"dataset_{index}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: datasets[{index}].name: expected a non-empty string")
    where = f"{path}: dataset '{name}'"
    _unknown(raw, _DATASET_KEYS, where)
    paths = raw.get("data_paths")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{where}: data_paths must be a non-empty list of files, folders or globs")
    c = DatasetConfig(name, list(paths), where=where, auto_format=True)
    if raw.get("builder") is not None:
        if raw["builder"] not in BUILDERS:
            raise ConfigError(
                f"{where}: builder {raw['builder']!r} is not supported; expected one of "
                f"{', '.join(BUILDERS)} (hub datasets cannot be loaded)"
            )
        c.builder = raw["builder"]
    if raw.get("sampling") is not None:
        s = raw["sampling"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s <= 1.0:
            raise ConfigError(f"{where}: sampling must be a number between 0 and 1, got {s!r}")
        c.sampling = float(s)
    if raw.get("split") is not None:
        c.split = _split(raw["split"], where)
    if raw.get("dataset_split_name") is not None:
        c.dataset_split_name = str(raw["dataset_split_name"])
    if "shuffle" in raw:
        if not isinstance(raw["shuffle"], bool):
            raise ConfigError(f"{where}: shuffle must be true or false")
        c.shuffle = raw["shuffle"]
    specs = raw.get("data_handlers") or []
    if not isinstance(specs, list):
        raise ConfigError(f"{where}: data_handlers must be a list of {{name, arguments}}")
    for i, h in enumerate(specs):
        c.data_handlers.append(_handler(h, f"{where}: data_handlers[{i}]", handlers))
    return c


def _split(raw, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: split must map train/validation to ratios")
    _unknown(raw, SPLITS, f"{where}: split")
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}: split.{k} must be a ratio between 0 and 1, got {v!r}")
        out[k] = float(v)
    total = sum(out.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(f"{where}: split ratios add up to {total:g}; they must add up to at most 1")
    if total <= 0:
        raise ConfigError(f"{where}: split gives no data to either train or validation")
    return out


def _handler(raw, where: str, handlers: dict | None) -> HandlerSpec:
    from tuning_core.config.parser import closest
    from tuning_core.data.handlers import check_arguments

    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: a data handler is a mapping with 'name' and 'arguments'")
    _unknown(raw, _HANDLER_KEYS, where)
    name = raw["name"]
    arguments = raw.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ConfigError(f"{where}: arguments of handler '{name}' must be a mapping")
    if handlers is not None:
        if name not in handlers:
            near = closest(name, handlers)
            raise ConfigError(
                f"{where}: unknown data handler '{name}'"
                + (f"; did you mean '{near}'?" if near else "")
                + f" (known: {', '.join(sorted(handlers))})"
            )
        check_arguments(name, handlers[name], arguments, f"{where} ({name})")
    return HandlerSpec(name, dict(arguments))


def check_sampling(config: DataConfig) -> None:
    """Sampling ratios of the datasets that give training data: all or none, none negative, summing to 1."""
    train = [d for d in config.datasets if d.share("train") > 0]
    sampled = [d for d in train if d.sampling is not None]
    if not sampled:
        return
    where = config.path or "data config"
    if len(sampled) != len(train):
        missing = [d.name for d in train if d.sampling is None]
        raise ConfigError(
            f"{where}: dataset '{missing[0]}' has no sampling ratio while others do; give every "
            f"training dataset a 'sampling' ratio, or none"
        )
    total = sum(d.sampling for d in sampled)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            f"{where}: the sampling ratios of the training datasets add up to {total:g}, not 1 "
            f"({', '.join(f'{d.name}: {d.sampling:g}' for d in sampled)})"
        )


def resolve_paths(config: DataConfig) -> dict[str, list]:
    """Every dataset's files (missing path or empty glob: ConfigError naming file, dataset and path)."""
    from tuning_core.data.readers import resolve_files

    out = {}
    for d in config.datasets:
        files = []
        for p in d.data_paths:
            spec = p
            if config.path and not os.path.isabs(os.path.expanduser(p)) and not os.path.exists(p):
                import glob

                beside = Path(config.path).parent / p  # relative to the config file, when not to the cwd
                is_glob = any(ch in p for ch in "*?[")
                if beside.exists() or (
                    is_glob and not glob.glob(p, recursive=True) and glob.glob(str(beside), recursive=True)
                ):
                    spec = str(beside)
            try:
                files.extend(resolve_files(spec, d.flag or f"{d.where}: data_paths", d.builder))
            except DataError as e:
                if d.flag:
                    raise
                raise ConfigError(str(e)) from None
        out[d.name] = files
    return out
