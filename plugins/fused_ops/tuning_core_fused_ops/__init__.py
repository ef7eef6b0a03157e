"""tuning-core plugin: Triton kernels (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU, fused LoRA).

Import-light: ``plugin`` (the entry point), ``args``, ``selection`` and ``rules``
use no torch; ``ops`` (kernels), ``patches`` and ``patcher`` load it.
"""

__version__ = "0.1.0"
