"""Plugins touch the core only through tuning_core.plugin_api, and never import one another."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    p
    for p in [*ROOT.glob("plugins/*/tuning_core_*"), *ROOT.glob("examples/*/tuning_core_*")]
    if (p / "__init__.py").exists()
)
ALLOWED_CORE = {"tuning_core.plugin_api"}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file; relative imports resolved inside its package."""
    tree = ast.parse(path.read_text(), str(path))
    here = [package, *path.relative_to(PACKAGE_DIRS[package]).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            # `from tuning_core import plugins` imports a module as a name
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "tuning_core"]
    return found


PACKAGE_DIRS = {p.name: p for p in PACKAGES}


def violations(package: str) -> list[str]:
    others = set(PACKAGE_DIRS) - {package}
    bad = []
    for path in sorted(PACKAGE_DIRS[package].rglob("*.py")):
        for line, module in imported_modules(path, package):
            top = module.split(".")[0]
            core = top == "tuning_core" and module != "tuning_core" and module not in ALLOWED_CORE
            if core or top in others:
                bad.append(f"{path.relative_to(PACKAGE_DIRS[package].parent)}:{line} imports {module}")
    return bad


def test_plugins_found():
    assert {
        "tuning_core_packing",
        "tuning_core_fused_ops",
        "tuning_core_peft_gptq",
        "tuning_core_trackers",
        "tuning_core_step_counter",
    } <= set(PACKAGE_DIRS)


def test_plugins_import_only_plugin_api_and_no_other_plugin():
    bad = [v for package in PACKAGE_DIRS for v in violations(package)]
    assert not bad, "plugins may import only tuning_core.plugin_api from the core, and no other plugin:\n" + "\n".join(
        bad
    )


def test_the_walker_sees_a_forbidden_import(tmp_path, monkeypatch):
    pkg = tmp_path / "tuning_core_probe"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from tuning_core.plugin_api import hookimpl\n")
    (pkg / "sub" / "a.py").write_text(
        "def f():\n    from tuning_core.builtin.peft import lora_config_from\n"
        "    from tuning_core_packing.planner import plan_epoch\n"
        "from .. import helpers\nfrom tuning_core import plugins\n"
    )
    monkeypatch.setitem(PACKAGE_DIRS, "tuning_core_probe", pkg)
    assert sorted(v.split(" imports ")[1] for v in violations("tuning_core_probe")) == [
        "tuning_core.builtin.peft",
        "tuning_core.plugins",
        "tuning_core_packing.planner",
    ]


def test_plugin_api_imports_no_torch():
    code = "import sys, tuning_core.plugin_api; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
