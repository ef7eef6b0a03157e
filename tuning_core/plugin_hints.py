"""Which first-party plugin owns a flag or a tracker, so a missing plugin gets a useful message.

`python -m tuning_core.plugin_hints --write` regenerates tuning_core/plugin_flags.py (flag -> plugin) from the
config classes of the installed first-party plugins; a test fails when that file is out of date.
"""

from pathlib import Path

from tuning_core.plugin_flags import FLAG_OWNERS  # generated: see the module docstring

FIRST_PARTY = {
    # entry-point name: (pip extra, distribution)
    "packing": ("packing", "tuning-core-packing"),
    "fused_ops": ("fused-ops", "tuning-core-fused-ops"),
    "peft_gptq": ("peft-gptq", "tuning-core-peft-gptq"),
    "trackers": ("aim", "tuning-core-trackers"),
    "eval": ("eval", "tuning-core-eval"),
}

TRACKER_OWNERS = {"aim": "trackers", "mlflow": "trackers", "clearml": "trackers"}
TRACKER_EXTRAS = {"aim": "aim", "mlflow": "mlflow", "clearml": "clearml"}

COMMAND_OWNERS = {"quantize": "peft_gptq", "eval": "eval"}


def install_hint(plugin: str, extra: str | None = None) -> str:
    extra = extra or FIRST_PARTY[plugin][0]
    return f"pip install 'tuning-core[{extra}]'"


def missing_flag_message(flag: str) -> str | None:
    plugin = FLAG_OWNERS.get(flag)
    if plugin is None:
        return None
    return f"--{flag} needs the {plugin} plugin: {install_hint(plugin)}"


FLAGS_FILE = Path(__file__).with_name("plugin_flags.py")
_HEADER = (
    '"""Which first-party plugin owns each flag (and alias), for the install hint when it is missing.\n\n'
    "Generated from the plugins' config classes by `python -m tuning_core.plugin_hints --write`: do not "
    'edit.\n"""\n\n'
)


def owners_from_plugins() -> dict[str, str]:
    """flag or alias -> first-party plugin, read from each installed first-party plugin's config classes."""
    from importlib import metadata

    from tuning_core.config.fields import specs_for

    owners: dict[str, str] = {}
    entry_points = {ep.name: ep for ep in metadata.entry_points(group="tuning_core")}
    for plugin in sorted(FIRST_PARTY):
        if plugin not in entry_points:
            raise RuntimeError(f"first-party plugin {plugin!r} is not installed: cannot read its flags")
        module = entry_points[plugin].load()
        for cls in module.tuning_core_config_classes():
            for spec in specs_for(cls):
                for flag in (spec.name, *spec.aliases):
                    owners[flag] = plugin
    return dict(sorted(owners.items()))


def render(owners: dict[str, str]) -> str:
    """The text of plugin_flags.py for this table."""
    lines = [f"    {flag!r}: {plugin!r},".replace("'", '"') for flag, plugin in owners.items()]
    return _HEADER + "FLAG_OWNERS = {\n" + "\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tuning_core.plugin_hints", description="Regenerate the flag -> first-party plugin table."
    )
    parser.add_argument("--write", action="store_true", help=f"rewrite {FLAGS_FILE} (else print it)")
    args = parser.parse_args(argv)
    text = render(owners_from_plugins())
    if args.write:
        FLAGS_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {FLAGS_FILE}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
