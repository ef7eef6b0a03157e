"""tuning-core plugin: GPTQ-LoRA and QLoRA.

Kept import-light: torch and transformers are imported by the submodules that
need them, never here.
"""

__version__ = "0.1.0"
