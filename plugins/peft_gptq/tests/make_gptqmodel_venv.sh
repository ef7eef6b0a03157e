#!/usr/bin/env bash
# A separate venv with GPTQModel for test_gptq_gptqmodel_compat.py only. GPTQModel pins numpy 2.2.6
# and, without optimum, makes peft refuse every LoRA: it must never go into the shared environment.
set -euo pipefail
VENV=${1:-/tmp/gptqvenv}
python -m venv "$VENV"
"$VENV/bin/pip" install -q "torch==2.13.0"   # the local CPU wheel (pip's find-links)
GPTQMODEL_CPU_WORKERS=2 BUILD_CUDA_EXT=0 "$VENV/bin/pip" install -q "gptqmodel==7.6.0" "optimum==2.3.*"
echo "export TUNING_CORE_GPTQMODEL_PYTHON=$VENV/bin/python"
