"""`python -m tuning_core.sft_trainer ARGS` = `tuning-core train ARGS` (fms-hf-tuning's entry point name).

This is the module to hand to `torchrun` and `accelerate launch`.
"""

import sys

from tuning_core.cli import run as cli_run


def run() -> int:
    return cli_run(["train", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(run())
