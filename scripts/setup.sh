#!/usr/bin/env bash
# Set up tuning-core and every plugin in this repository (editable), then run the demo.
# torch goes first: a CPU build where no torch is installed (pip would otherwise pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install torch==2.13.0
fi
"$PY" -m pip install -e ".[test,report]"
"$PY" -m pip install -e plugins/packing -e plugins/fused_ops -e "plugins/peft_gptq[qlora]" -e "plugins/trackers[aim,mlflow]" -e plugins/eval
"$PY" -m pip install -e "examples/third_party_plugin"

if [ "${SKIP_DEMO:-0}" != "1" ]; then
  "$PY" -m tuning_core demo --output_dir "${DEMO_DIR:-out/demo}"
fi
