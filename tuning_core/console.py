"""What a command prints: our own lines, the progress bar and the loss lines; library chatter only on request.

Libraries under us warn about their own internals (deprecations we already handle, hardware notes that do
not apply). We fix at the source what we can (build_training_args passes current argument names and no
pin_memory without a GPU) and silence the rest here, in the CLI process only: a program that imports
tuning_core as a library keeps its own warning settings.
"""

from __future__ import annotations

import logging
import os
import warnings

DEBUG_ENV = "TUNING_CORE_DEBUG"
LIBRARIES = (
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "torch",
    "bitsandbytes",
    "kernels",
    "huggingface_hub",
    "triton",
    "safetensors",
    "aim",
    "mlflow",
    "lm_eval",
)
_VERBOSE_LEVELS = ("debug", "info", "detail")


def wants_debug(argv: list[str], environ=os.environ) -> bool:
    """TUNING_CORE_DEBUG=1, or fms-hf-tuning's --log_level debug|info, shows everything."""
    if environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for i, arg in enumerate(argv):
        value = (
            arg.split("=", 1)[1]
            if arg.startswith("--log_level=")
            else (argv[i + 1] if arg == "--log_level" and i + 1 < len(argv) else None)
        )
        if value is not None and value.strip().lower() in _VERBOSE_LEVELS:
            return True
    return False


def quiet_libraries(argv: list[str]) -> bool:
    """Hide the libraries' warnings and info logs unless debugging was asked for; True when it did."""
    if wants_debug(argv):
        return False
    # Read by the libraries when they are first imported, which happens after this, in the same process.
    for var in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ.setdefault(var, "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in LIBRARIES:
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
        logging.getLogger(name).setLevel(logging.ERROR)
    return True
