#!/usr/bin/env bash
# Write constraints.txt: the exact version of every third-party package in this Python environment.
# Run it only in an environment whose test suite has just passed (scripts/check_newest.sh does that).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pyver=$("$PY" -c 'import platform; print(platform.python_version())')
{
  echo "# The tested set: every third-party package the whole test suite last passed with."
  echo "# Written by scripts/lock.sh on $(date -u +%Y-%m-%d), Python $pyver, $(uname -m). Do not edit by hand:"
  echo "# scripts/setup.sh installs with it, scripts/check_newest.sh tries the newest releases and rewrites it."
  # Our own packages are editable installs (left out); local labels such as torch's +cpu are dropped so
  # the same pin admits the build each machine gets.
  "$PY" -m pip freeze --exclude-editable \
    | grep -v -E '^(pip|setuptools|wheel|tuning-core[a-z-]*)==' | grep -v ' @ ' \
    | sed -E 's/\+[A-Za-z0-9.]+$//' | LC_ALL=C sort -f
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
