"""`tuning-core`: train, list plugins, run the demo, and whatever commands plugins add.

Kept free of torch/transformers imports until a command actually needs them.
"""

from __future__ import annotations

import argparse
import json
import sys

from tuning_core import __version__
from tuning_core.console import quiet_libraries
from tuning_core.errors import UserError, from_exception
from tuning_core.optional_backends import own_process
from tuning_core.plugin_hints import COMMAND_OWNERS, install_hint

CORE_COMMANDS = {
    "train": "Tune a model (flags and JSON/YAML config compatible with fms-hf-tuning's sft_trainer).",
    "plugins": "List installed plugins, the hooks they implement and the flags they add.",
    "demo": "Build a tiny model and tune it on the bundled dataset: a one-minute smoke test.",
    "check-fsdp": "Check an `accelerate launch` FSDP config file the way accelerate will read it.",
}


def plugin_commands() -> dict:
    from tuning_core.plugins import get_plugin_manager

    commands = {}
    for result in get_plugin_manager().hook.tuning_core_cli_commands():
        for cmd in result or ():
            if cmd.name in CORE_COMMANDS or cmd.name in commands:
                raise UserError(f"two plugins define the command '{cmd.name}'")
            commands[cmd.name] = cmd
    return commands


def top_level_help(commands: dict) -> str:
    lines = [f"usage: tuning-core <command> [options]   (tuning-core {__version__})", "", "commands:"]
    for name, text in CORE_COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    for name, cmd in sorted(commands.items()):
        lines.append(f"  {name:<10} {cmd.help}")
    lines += ["", "Run 'tuning-core <command> --help' for a command's options."]
    return "\n".join(lines)


def cmd_plugins(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tuning-core plugins", description=CORE_COMMANDS["plugins"])
    parser.add_argument("--json", action="store_true", help="Print machine-readable JSON.")
    args = parser.parse_args(argv)
    from tuning_core.config.fields import specs_for
    from tuning_core.plugins import get_plugin_manager, hooks_implemented, plugin_details, plugin_infos

    pm = get_plugin_manager()
    rows = []
    for info in plugin_infos().values():
        flags = []
        if hasattr(info.module, "tuning_core_config_classes"):
            for cls in info.module.tuning_core_config_classes() or ():
                flags.extend(f"--{s.name}" for s in specs_for(cls))
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "builtin": info.builtin,
                "hooks": hooks_implemented(pm, info.name),
                "flags": flags,
            }
        )
        details = plugin_details(pm, info.name)
        if details:
            rows[-1]["details"] = details
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        kind = "built-in" if row["builtin"] else "plugin"
        print(f"{row['name']}  ({kind}; {row['distribution']} {row['version']})")
        print(f"    hooks: {', '.join(h.replace('tuning_core_', '') for h in row['hooks']) or '-'}")
        if row["flags"]:
            print(f"    flags: {' '.join(row['flags'])}")
        for key, value in row.get("details", {}).items():
            print(f"    {key}: {', '.join(value) if isinstance(value, (dict, list)) else value}")
    return 0


def cmd_train(argv: list[str]) -> int:
    from tuning_core.pipeline import run_training

    run_training(argv)
    return 0


def cmd_demo(argv: list[str]) -> int:
    from tuning_core.demo import run_demo

    return run_demo(argv)


def run(argv: list[str] | None = None) -> int:
    """The `tuning-core` program: main() with the libraries' console chatter hidden (see console.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_libraries(argv)
    own_process()
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except UserError as e:
        print(f"tuning-core: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tuning-core: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # known failure kinds become one line; anything else is a bug and keeps its traceback
        known = from_exception(e)
        if known is None:
            raise
        print(f"tuning-core: error: {known}", file=sys.stderr)
        return known.exit_code


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "--version":
        print(f"tuning-core {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(top_level_help(plugin_commands()))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "train":
        return cmd_train(rest)
    if name == "plugins":
        return cmd_plugins(rest)
    if name == "demo":
        return cmd_demo(rest)
    if name == "check-fsdp":
        from tuning_core.fsdp_check import main as check_fsdp

        return check_fsdp(rest)
    commands = plugin_commands()
    if name in commands:
        cmd = commands[name]
        from tuning_core.config.parser import OneLineParser

        parser = OneLineParser(prog=f"tuning-core {name}", description=cmd.help)
        cmd.add_arguments(parser)
        return int(cmd.run(parser.parse_args(rest)) or 0)
    if name in COMMAND_OWNERS:
        owner = COMMAND_OWNERS[name]
        raise UserError(f"'tuning-core {name}' needs the {owner} plugin: {install_hint(owner)}")
    raise UserError(f"unknown command '{name}'; run 'tuning-core --help' for the list")


if __name__ == "__main__":
    sys.exit(run())
