#!/usr/bin/env bash
# Every GPU check in one command, for whoever gets a CUDA machine (under 8 minutes: each part has a timeout):
#   bash scripts/gpu_check.sh [RESULTS_DIR]        (default: gpu_results/<UTC time>)
# Runs every gpu-marked test (compiled Triton kernels: TRITON_INTERPRET must be unset, and the tests count
# launches), then benchmarks/fused_kernels.py and benchmarks/quantized.py on CUDA. Writes JSON lines:
#   RESULTS_DIR/tests.jsonl       one line per gpu test: {"test", "outcome", "seconds", "message"}
#   RESULTS_DIR/kernels.jsonl     benchmarks/fused_kernels.py rows
#   RESULTS_DIR/quantized.jsonl   benchmarks/quantized.py rows
# Exit status: 0 only if no gpu test failed and both benchmarks ran (skips, e.g. 2-GPU tests, are listed).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
unset TRITON_INTERPRET
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: nothing to check')" \
    || exit 2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/device.txt"

status=0
timeout 240 python3 -m pytest -m gpu -q -p no:cacheprovider --junitxml="$out/tests.xml" tests plugins \
    > "$out/tests.log" 2>&1 || status=1
python3 - "$out" <<'PY' || status=1
import json, sys
import xml.etree.ElementTree as ET
out = sys.argv[1]
bad = skipped = 0
with open(f"{out}/tests.jsonl", "w") as f:
    for case in ET.parse(f"{out}/tests.xml").iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome, message = tag, (node.get("message") or "")[:300]
        bad += outcome in ("failure", "error")
        skipped += outcome == "skipped"
        f.write(json.dumps({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                            "seconds": float(case.get("time", 0)), "message": message}) + "\n")
total = sum(1 for _ in open(f"{out}/tests.jsonl"))
print(f"gpu tests: {total} collected, {bad} failed, {skipped} skipped (see messages) -> {out}/tests.jsonl")
sys.exit(1 if bad else 0)
PY
timeout 100 python3 benchmarks/fused_kernels.py --device cuda --size quick > "$out/kernels.jsonl" 2> "$out/kernels.log" \
    || { echo "benchmarks/fused_kernels.py failed: $out/kernels.log"; status=1; }
timeout 120 python3 benchmarks/quantized.py --device cuda > "$out/quantized.jsonl" 2> "$out/quantized.log" \
    || { echo "benchmarks/quantized.py failed: $out/quantized.log"; status=1; }
echo "results in $out (exit $status)"
exit $status
