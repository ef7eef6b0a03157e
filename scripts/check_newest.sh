#!/usr/bin/env bash
# Move to the newest releases in one deliberate step: a throwaway venv installed WITHOUT the lock
# (whatever pip resolves today within pyproject's ranges), the whole test suite, and, only if it
# passes, a rewritten constraints.txt. Review `git diff constraints.txt` and commit it with the fixes.
# Extra arguments go to pytest (e.g. `-x`); a failing suite leaves the lock untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
python3 -m venv "$root/venv"
export PATH="$root/venv/bin:$PATH" PYTHON="$root/venv/bin/python" PIP_DISABLE_PIP_VERSION_CHECK=1
TUNING_CORE_NO_LOCK=1 SKIP_DEMO=1 bash scripts/setup.sh
"$PYTHON" -m pytest "$@"
bash scripts/lock.sh
git diff -U0 constraints.txt | grep -E '^[-+][A-Za-z]' || echo "no version changed"
