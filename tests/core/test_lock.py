"""The lock (constraints.txt) is what setup installs, fits every pyproject range, and the README names it."""

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
KEY_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def pyprojects() -> list[Path]:
    return [
        ROOT / "pyproject.toml",
        *sorted(ROOT.glob("plugins/*/pyproject.toml")),
        ROOT / "examples" / "third_party_plugin" / "pyproject.toml",
    ]


def test_every_locked_version_fits_every_range():
    pins = locked()
    ours = {canonicalize_name(tomllib.loads(p.read_text())["project"]["name"]) for p in pyprojects()}
    misfits = []
    for path in pyprojects():
        project = tomllib.loads(path.read_text())["project"]
        reqs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            reqs += extra
        for text in reqs:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name in ours:
                continue
            assert name in pins, f"{path.relative_to(ROOT)} needs {req.name}, which constraints.txt does not pin"
            if not req.specifier.contains(pins[name], prereleases=True):
                misfits.append(f"{path.relative_to(ROOT)}: {text} excludes the locked {pins[name]}")
    assert not misfits, misfits


def test_setup_installs_the_lock():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
    assert "torch==" + locked()["torch"] in setup  # the CPU wheel installed first is the locked torch
    assert "bash scripts/setup.sh" in (ROOT / ".ci" / "run").read_text()


def test_readme_names_the_tested_versions():
    readme = (ROOT / "README.md").read_text()
    pins = locked()
    for name in KEY_PACKAGES:
        assert re.search(rf"\b{name} {re.escape(pins[name])}\b", readme), f"README does not say {name} {pins[name]}"
