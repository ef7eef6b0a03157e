"""Keep optional back-ends out of a run that does not use them.

peft imports bitsandbytes whenever it is installed, and bitsandbytes probes its hardware (and, on some
CPUs, a kernel hub) on import: seconds of start-up and console noise in a run that never quantizes.
Plugins declare which of their libraries are needed by which keys (`tuning_core_optional_backends`);
in the `tuning-core` process, the core marks an unneeded library as absent before anything imports it.
"""

from __future__ import annotations

import sys
from typing import Any

_OWNS_PROCESS = False


def own_process() -> None:
    """Called by the `tuning-core` program: this process's imports are ours to decide."""
    global _OWNS_PROCESS
    _OWNS_PROCESS = True


def hide_unused(pm, values: dict[str, Any]) -> list[str]:
    """Mark each declared library that no set key needs as not installed; returns the names hidden."""
    if not _OWNS_PROCESS:
        return []  # a library caller (or a test process) may need the back-end later: leave imports alone
    hidden = []
    for declared in pm.hook.tuning_core_optional_backends():
        for module, keys in (declared or {}).items():
            if module in sys.modules or any(_is_set(values.get(k)) for k in keys):
                continue
            sys.modules[module] = None  # importlib.util.find_spec now answers None; `import` raises ImportError
            hidden.append(module)
    return hidden


def _is_set(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "none", "0")
    return bool(value)
