"""Meta-test: every hook is documented for plugin authors and exercised by some test."""

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


def test_every_hook_is_documented():
    text = (ROOT / "docs" / "plugins.md").read_text()
    missing = [n for n in hook_names() if f"`{n}(" not in text]
    assert not missing, f"undocumented hooks in docs/plugins.md: {missing}"


def test_every_hook_is_exercised_by_a_test():
    tests = [p for p in list(ROOT.glob("tests/**/test_*.py")) + list(ROOT.glob("plugins/*/tests/**/test_*.py"))
             if p.resolve() != Path(__file__).resolve()]
    sources = "\n".join(p.read_text() for p in tests)
    missing = [n for n in hook_names() if n not in sources]
    assert not missing, f"hooks no test implements or calls: {missing}"
