"""Small helpers for the core's end-to-end tests."""

import subprocess
import sys

from tuning_core.testing.training import TEXT_FIELD_ARGS  # noqa: F401


def cli(*args, env=None, timeout=600):
    """Run `python -m tuning_core ARGS` in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run(
        [sys.executable, "-m", "tuning_core", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


def with_steps(args: list, steps: int) -> list:
    """The same arguments with another --max_steps."""
    i = args.index("--max_steps")
    return args[: i + 1] + [str(steps)] + args[i + 2 :]
