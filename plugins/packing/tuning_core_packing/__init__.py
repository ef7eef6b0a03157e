"""tuning-core packing plugin: padding-free training and the multipack batch sampler."""

__version__ = "0.1.0"
