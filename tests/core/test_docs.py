"""Meta-test: every hook is documented for plugin authors with its full signature, and has a test named for it."""

import ast
import inspect
from pathlib import Path

from tuning_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def hook_names():
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("tuning_core_")]


def test_every_hook_has_a_one_line_docstring():
    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__
        assert doc and len(doc.strip().splitlines()) == 1, name


def _signature(name: str) -> str:
    """The hook's call as plugin authors write it, from pluggy's own record of the spec's arguments."""
    return f"{name}({', '.join(_spec_argnames(name))})"


def _spec_argnames(name: str) -> tuple[str, ...]:
    from tuning_core.plugins import build_plugin_manager

    global _PM
    if _PM is None:
        _PM, _ = build_plugin_manager()
    return getattr(_PM.hook, name).spec.argnames


_PM = None


def test_every_hook_is_documented_with_its_full_signature():
    text = (ROOT / "docs" / "plugins.md").read_text()
    missing = [_signature(n) for n in hook_names() if f"`{_signature(n)}`" not in text]
    assert not missing, f"docs/plugins.md must show these hooks exactly so: {missing}"


def _test_function_names() -> set[str]:
    files = list(ROOT.glob("tests/**/test_*.py")) + list(ROOT.glob("plugins/*/tests/**/test_*.py"))
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_hook_has_a_test_named_for_it():
    """As in datasette: a test called ``test_<hook>`` (or ``test_<hook>_<more>``) for every hook."""
    tests = _test_function_names()
    missing = [n for n in hook_names() if not any(t == f"test_{n}" or t.startswith(f"test_{n}_") for t in tests)]
    assert not missing, f"hooks without a test named for them: {missing}"
