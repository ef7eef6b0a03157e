#!/usr/bin/env bash
# Set up tuning-core and every plugin in this repository (editable), then run the demo.
# torch goes first: a CPU build where no torch is installed (pip would otherwise pull a multi-GB CUDA build).
# Every other package installs at the version in constraints.txt, the set the test suite passed with
# (TUNING_CORE_NO_LOCK=1: whatever pip resolves today; scripts/check_newest.sh uses that).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=(-c constraints.txt)
[ "${TUNING_CORE_NO_LOCK:-0}" = "1" ] && LOCK=()

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install torch==2.13.0
fi
"$PY" -m pip install "${LOCK[@]}" -e ".[test,report]"
"$PY" -m pip install "${LOCK[@]}" -e plugins/packing -e plugins/fused_ops -e "plugins/peft_gptq[qlora]" \
  -e "plugins/trackers[aim,mlflow,clearml]" -e plugins/eval
"$PY" -m pip install "${LOCK[@]}" -e "examples/third_party_plugin"

if [ "${SKIP_DEMO:-0}" != "1" ]; then
  "$PY" -m tuning_core demo --output_dir "${DEMO_DIR:-out/demo}"
fi
