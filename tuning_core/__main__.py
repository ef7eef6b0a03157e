"""`python -m tuning_core` is the `tuning-core` command."""

import sys

from tuning_core.cli import run

sys.exit(run())
