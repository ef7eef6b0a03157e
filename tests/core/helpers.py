"""Small helpers for the core's end-to-end tests."""

import subprocess
import sys

# Re-exported under the names the core tests use.
from tuning_core.testing.training import TEXT_FIELD_ARGS as TEXT_FIELD_ARGS
from tuning_core.testing.training import logged as losses
from tuning_core.testing.training import train_argv as train_args

__all__ = ["TEXT_FIELD_ARGS", "cli", "losses", "train_args", "with_steps"]


def cli(*args, env=None, timeout=600):
    """Run `python -m tuning_core ARGS` in a subprocess; returns CompletedProcess with text output."""
    return subprocess.run(
        [sys.executable, "-m", "tuning_core", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


def with_steps(args: list, steps: int) -> list:
    """The same arguments with another --max_steps."""
    i = args.index("--max_steps")
    return args[: i + 1] + [str(steps)] + args[i + 2 :]
