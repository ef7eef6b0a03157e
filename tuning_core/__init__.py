"""tuning-core: a plugin-based framework for fine-tuning large language models."""

__version__ = "0.1.0"
