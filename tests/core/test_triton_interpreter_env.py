"""TRITON_INTERPRET is set only where no GPU exists, in one place, so GPU tests run compiled kernels."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tuning_core.testing.gpu import use_interpreter_without_gpu

ROOT = Path(__file__).resolve().parents[2]
SETS_INTERPRETER = re.compile(r"""environ(\.setdefault\(|\[)\s*["']TRITON_INTERPRET["']""")


def _fake_gpu_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\nexit 0\n")
    smi.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def test_interpreter_only_without_gpu(tmp_path, monkeypatch):
    env = {}
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    use_interpreter_without_gpu(env)
    assert env == {"TRITON_INTERPRET": "1"}
    env = {}
    monkeypatch.setenv("PATH", _fake_gpu_path(tmp_path))
    use_interpreter_without_gpu(env)
    assert env == {}


def test_no_conftest_sets_the_interpreter_on_its_own():
    """Only the root conftest decides (through tuning_core.testing.gpu); a folder that sets it itself
    overrides the GPU check for every test that imports kernels after it."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in ROOT.rglob("conftest.py")
        if ".git" not in p.parts and SETS_INTERPRETER.search(p.read_text())
    ]
    assert offenders == []


def test_conftests_leave_a_gpu_machine_compiling(tmp_path):
    """Every conftest, run on a machine that looks like it has a GPU, leaves TRITON_INTERPRET unset."""
    conftests = [str(p) for p in sorted(ROOT.rglob("conftest.py")) if ".git" not in p.parts]
    code = (
        "import os, runpy, sys\n"
        "for path in sys.argv[1:]:\n"
        "    sys.path.insert(0, os.path.dirname(path))\n"
        "    try:\n"
        "        runpy.run_path(path)\n"
        "    except ImportError:\n"  # relative imports: the static test above still covers the file
        "        pass\n"
        "print(os.environ.get('TRITON_INTERPRET', 'unset'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PATH"] = _fake_gpu_path(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", code, *conftests], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "unset"
