"""Install replacements on instances (or module functions) so they can be recognised and removed again.

Instance patches set ``forward`` (or ``loss_function``) in the instance's
``__dict__``: the class, the module tree and the state dict are untouched,
and deleting the attribute restores the original. Module-level functions are
process-wide; their originals are kept here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

MARK = "_fused_ops_replacement"
_FUNCTION_ORIGINALS: dict[tuple[str, str], Any] = {}


def mark(fn: Callable, label: str) -> Callable:
    setattr(fn, MARK, label)
    return fn


def replacement_label(obj) -> str | None:
    return getattr(obj, MARK, None)


def patched_forward(module) -> str | None:
    return replacement_label(module.__dict__.get("forward"))


def set_forward(module, fn: Callable, label: str) -> None:
    module.__dict__["forward"] = mark(fn, label)


def set_loss_function(model, fn: Callable, label: str) -> None:
    model.loss_function = mark(fn, label)  # transformers keeps it as model._loss_function


def plain_function(obj) -> Callable:
    """The Python function behind a modeling-module function.

    transformers 5.25 turns some of them (``apply_rotary_pos_emb``) into an instance of a ``kernels`` ``Func``
    module whose ``forward(*args, **kwargs)`` calls the original function unless a hub kernel was selected;
    earlier releases, and functions nobody kernelized, are the function itself. Either way the attention code
    calls the module-level name, so replacing that name takes effect for both shapes.
    """
    if not callable(obj) or not hasattr(type(obj), "kernel_layer_name"):
        return obj
    forward = getattr(type(obj), "forward", None)
    cells = dict(
        zip(
            getattr(getattr(forward, "__code__", None), "co_freevars", ()),
            getattr(forward, "__closure__", None) or (),
            strict=False,
        )
    )
    inner = cells.get("func")
    return inner.cell_contents if inner is not None and callable(inner.cell_contents) else obj


def set_module_function(module_name: str, name: str, make: Callable[[Callable], Callable], label: str) -> bool:
    """Replace ``module_name.name`` by ``make(original)`` once; returns False when already replaced."""
    module = importlib.import_module(module_name)
    current = getattr(module, name)
    if replacement_label(current):
        return False
    _FUNCTION_ORIGINALS[(module_name, name)] = current
    setattr(module, name, mark(make(current), label))
    return True


def unpatch(model) -> int:
    """Remove every instance patch from ``model`` and restore patched module functions; returns the count."""
    removed = 0
    for module in model.modules():
        if patched_forward(module):
            del module.__dict__["forward"]
            removed += 1
        if replacement_label(module.__dict__.get("_loss_function")):
            del module.__dict__["_loss_function"]
            removed += 1
    return removed + restore_functions()


def restore_functions() -> int:
    """Put back every modeling-module function a patch replaced (they are process-wide); returns the count."""
    restored = 0
    for (module_name, name), original in list(_FUNCTION_ORIGINALS.items()):
        setattr(importlib.import_module(module_name), name, original)
        del _FUNCTION_ORIGINALS[(module_name, name)]
        restored += 1
    return restored
