"""Flags and config files -> one validated set of values.

Precedence, lowest first: field defaults, the JSON file named by
SFT_TRAINER_CONFIG_JSON_PATH, the file given with --config, explicit flags.
Unknown flags and keys are errors naming the closest valid key.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuning_core.config.fields import FieldSpec
from tuning_core.errors import ConfigError
from tuning_core.plugin_hints import missing_flag_message

ENV_CONFIG = "SFT_TRAINER_CONFIG_JSON_PATH"


def check_unique(specs: Iterable[FieldSpec]) -> dict[str, FieldSpec]:
    by_name: dict[str, FieldSpec] = {}
    for spec in specs:
        for key in (spec.name, *spec.aliases):
            other = by_name.get(key)
            if other is not None:
                raise ConfigError(
                    f"config key '{key}' is defined twice: by {other.owner.__module__}.{other.owner.__name__} "
                    f"and {spec.owner.__module__}.{spec.owner.__name__}"
                )
            by_name[key] = spec
    return by_name


def add_arguments(parser: argparse.ArgumentParser, specs: Iterable[FieldSpec], group_titles=None) -> None:
    """Add one flag per spec. Values are kept raw (strings) and converted later by FieldSpec.convert."""
    groups: dict[type, Any] = {}
    for spec in specs:
        owner = spec.owner
        if owner not in groups:
            title = (group_titles or {}).get(owner, owner.__name__)
            groups[owner] = parser.add_argument_group(title)
        kwargs: dict[str, Any] = {"dest": spec.name, "help": _help(spec), "default": argparse.SUPPRESS}
        if spec.is_list:
            kwargs["nargs"] = spec.nargs or ("*" if spec.const is not None else "+")
        elif spec.scalar is bool:
            kwargs.update(nargs="?", const="true")
        elif spec.const is not None:
            kwargs.update(nargs="?", const=spec.const)
        kwargs["metavar"] = spec.name.upper() if not spec.choices else "{" + ",".join(map(str, spec.choices)) + "}"
        groups[owner].add_argument(*spec.flags(), **kwargs)


def _help(spec: FieldSpec) -> str:
    text = spec.help.replace("%", "%%")
    if spec.default is not None and not spec.required and spec.default != []:
        text += f" (default: {spec.default})".replace("%", "%%")
    return text


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors become ConfigError (exit 2, one line, no usage dump)
        raise ConfigError(f"{self.prog}: {message}")


_Parser = OneLineParser


def make_parser(
    prog: str, specs: list[FieldSpec], description: str = "", with_config_file=True, group_titles=None
) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description=description, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if with_config_file:
        parser.add_argument(
            "--config",
            dest="__config__",
            default=None,
            metavar="FILE",
            help="JSON or YAML file of settings; flags given on the command line override it.",
        )
    add_arguments(parser, specs, group_titles)
    return parser


def closest(key: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key_error(key: str, known: Iterable[str], where: str) -> ConfigError:
    hint = missing_flag_message(key)
    if hint:
        return ConfigError(f"{where}: {hint}")
    near = closest(key, known)
    return ConfigError(f"{where}: unknown key '{key}'" + (f"; did you mean '{near}'?" if near else ""))


def read_config_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to read") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}:{line} is not valid YAML: {getattr(e, 'problem', e)}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: line {e.lineno} is not valid JSON: {e.msg}") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON/YAML object of settings, got {type(data).__name__}")
    return data


def parse_values(
    argv: list[str],
    specs: list[FieldSpec],
    prog: str,
    description: str = "",
    group_titles=None,
    known_only: bool = False,
    given: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Parse flags and config files into {field name: typed value} for every spec (defaults included).

    ``known_only`` reads what ``specs`` cover and passes over everything else (a first look before all specs exist).
    ``given``, if passed, is filled with {field name: where it was set} for every value not left at its default.
    """
    given = {} if given is None else given
    by_key = check_unique(specs)
    parser = make_parser(prog, specs, description, group_titles=group_titles)
    if known_only:
        parser.add_help = False
        parser._actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        parser._option_string_actions.pop("-h", None)
        parser._option_string_actions.pop("--help", None)
    ns, unknown = parser.parse_known_args(argv)
    if unknown and not known_only:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        key = flag.lstrip("-").split("=", 1)[0]
        if not flag.startswith("-"):
            raise ConfigError(f"{prog}: unexpected argument {flag!r}")
        hint = missing_flag_message(key)
        if hint:
            raise ConfigError(hint)
        near = closest(key, by_key)
        raise ConfigError(f"unknown flag --{key}" + (f"; did you mean --{near}?" if near else ""))

    values: dict[str, Any] = {s.name: s.default for s in specs}
    layers: list[tuple[str, dict[str, Any]]] = []
    env_path = os.environ.get(ENV_CONFIG)
    if env_path:
        layers.append((env_path, read_config_file(env_path)))
    file_path = getattr(ns, "__config__", None)
    if file_path:
        layers.append((file_path, read_config_file(file_path)))
    for where, data in layers:
        for key, raw in data.items():
            spec = by_key.get(key)
            if spec is None:
                if known_only:
                    continue
                raise unknown_key_error(key, by_key, where)
            values[spec.name] = spec.convert(raw, f"{where}: key '{key}'")
            given[spec.name] = where
    for key, raw in vars(ns).items():
        if key == "__config__":
            continue
        spec = by_key[key]
        if spec.is_list and raw == [] and spec.const is not None:
            raw = spec.const
        values[spec.name] = spec.convert(raw, f"--{key}")
        given[spec.name] = f"--{key}"
    return values
