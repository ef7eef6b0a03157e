"""`python -m tuning_core` is the `tuning-core` command."""

import sys

from tuning_core.cli import main

sys.exit(main())
