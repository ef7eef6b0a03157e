"""Built-in data plugin: the data flags, their checks, and `tuning-core data preview`.

Import-light: the data pipeline (datasets, tokenizers) is imported only when a command runs.
"""

from __future__ import annotations

import os
import sys

from tuning_core.data.arguments import DataArguments
from tuning_core.errors import ConfigError
from tuning_core.plugin_api import CliCommand, hookimpl


@hookimpl
def tuning_core_config_classes():
    return [DataArguments]


@hookimpl
def tuning_core_data_handlers():
    from tuning_core.data.builtin_handlers import BUILTIN_HANDLERS

    return dict(BUILTIN_HANDLERS)


@hookimpl
def tuning_core_validate_config(config):
    from tuning_core.data.formats import check_flags
    from tuning_core.data.pipeline import settings_from_config
    from tuning_core.data.shards import check_data_extras

    check_data_extras(config)  # first: a vision-language run fails on its image field, not on a text one
    check_flags(settings_from_config(config))
    targs = getattr(config, "training_args", None)
    if getattr(config, "data_config_path", None):
        check_data_config(config, targs)
    # Only a real run (one with training arguments) needs data; checking here fails before the model loads.
    elif targs is not None and not getattr(config, "training_data_path", None):
        raise ConfigError("--training_data_path is required: the file, directory or glob of training data")


def check_data_config(config, targs=None):
    """The whole data config, its handlers and its paths, before the model loads."""
    from tuning_core.data.data_config import resolve_paths
    from tuning_core.data.handlers import registered_handlers
    from tuning_core.data.pipeline import data_config_for

    data_config = data_config_for(config, registered_handlers())
    resolve_paths(data_config)
    if data_config.dataprocessor.streaming and getattr(config, "multipack", None):
        raise ConfigError(
            f"{data_config.path}: dataprocessor.streaming cannot be combined with --multipack, "
            f"which has to see the whole dataset every epoch"
        )
    max_steps = getattr(targs, "max_steps", None) if targs is not None else None
    if data_config.dataprocessor.streaming and targs is not None and not (max_steps and max_steps > 0):
        raise ConfigError(
            f"{data_config.path}: dataprocessor.streaming is true, so the data has no length: give "
            f"--max_steps (a streamed dataset cannot count epochs)"
        )


@hookimpl
def tuning_core_cli_commands():
    return [
        CliCommand(
            "data",
            "Inspect training data: 'tuning-core data preview' shows what is trained.",
            add_data_arguments,
            run_data_command,
        )
    ]


def add_data_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="{preview,cache}")
    cache = sub.add_parser(
        "cache",
        help="Show or clear the processed-data cache.",
        description="The processed-data cache ($TUNING_CORE_CACHE or ~/.cache/tuning_core; "
        "at most $TUNING_CORE_CACHE_MAX_GB, default 5, least recently used "
        "entries evicted first).",
    )
    cache.add_argument("--clear", action="store_true", help="Delete every cached dataset.")
    sub.required = True
    preview = sub.add_parser(
        "preview",
        help="Print the first processed examples with trained text marked.",
        description="Process the data exactly as training would and print the first "
        "examples: trained text green (or between [[ ]] when piped), masked "
        "text grey, with token counts.",
    )
    preview.add_argument("-n", type=int, default=3, help="How many examples to show (default 3).")
    preview.add_argument(
        "--json", action="store_true", help="Print one JSON object per example with the raw input_ids and labels."
    )
    preview.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="Colour the output: auto (on a terminal, unless NO_COLOR is set), always or never.",
    )
    from tuning_core.config import add_arguments

    add_arguments(preview, _preview_classes())


def _cache_command(args) -> int:
    from tuning_core.data import cache

    if args.clear:
        n, freed = cache.clear()
        print(f"removed {n} cached datasets ({freed / 1e6:.1f} MB) from {cache.cache_root()}")
        return 0
    found = cache.entries()
    total = sum(cache.size(p) for p in found)
    print(
        f"{cache.cache_root()}: {len(found)} cached datasets, {total / 1e6:.1f} MB "
        f"(limit {cache.max_bytes() / 1e9:g} GB)"
    )
    return 0


def _preview_classes():
    from tuning_core.config.arguments import ModelArguments

    return [ModelArguments, DataArguments]


def run_data_command(args) -> int:
    if args.data_command == "cache":
        return _cache_command(args)
    from tuning_core.builtin.model_loader import load_tokenizer
    from tuning_core.config import config_from_args
    from tuning_core.data import prepare_datasets
    from tuning_core.data.preview import render_preview

    config = config_from_args(args, _preview_classes())
    if not (config.tokenizer_name_or_path or config.model_name_or_path):
        raise ConfigError("data preview needs --model_name_or_path or --tokenizer_name_or_path for the tokenizer")
    tuning_core_validate_config(config)
    if not (config.training_data_path or config.data_config_path):
        raise ConfigError(
            "--training_data_path is required: the file, directory or glob of training data (or --data_config_path)"
        )
    if args.n < 0:
        raise ConfigError(f"-n must be 0 or more, not {args.n}")
    tokenizer = load_tokenizer(config)
    processed = prepare_datasets(config, tokenizer)
    if args.color == "auto":
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    else:
        color = args.color == "always"
    print(render_preview(processed, tokenizer, n=args.n, color=color, as_json=args.json))
    return 0
