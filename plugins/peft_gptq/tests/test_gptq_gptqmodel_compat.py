"""Format compatibility with GPTQModel, both ways, run in a separate venv (see make_gptqmodel_venv.sh).

GPTQModel cannot share our environment (it pins numpy 2.2.6 and, without
optimum, makes peft refuse LoRA), so the test drives it in a subprocess of the
venv named by TUNING_CORE_GPTQMODEL_PYTHON (default /tmp/gptqvenv/bin/python),
and skips when that has no GPTQModel.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from peft_gptq_helpers import calibration_texts

from tuning_core_peft_gptq.gptq_loader import load_gptq_model

pytestmark = pytest.mark.slow
PYTHON = os.environ.get("TUNING_CORE_GPTQMODEL_PYTHON", "/tmp/gptqvenv/bin/python")


def _gptqmodel_available() -> bool:
    if not Path(PYTHON).is_file():
        return False
    proc = subprocess.run([PYTHON, "-c", "import gptqmodel"], capture_output=True, timeout=300)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def gptqmodel_outputs(tiny_llama, gptq_llama, tmp_path_factory):
    if not _gptqmodel_available():
        pytest.skip(f"GPTQModel is not installed in {PYTHON}: run plugins/peft_gptq/tests/make_gptqmodel_venv.sh")
    work = tmp_path_factory.mktemp("gptqmodel")
    ids = torch.randint(3, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    torch.save(ids, work / "ids.pt")
    job = {
        "quantize": {
            "src": str(tiny_llama),
            "out": str(work / "theirs"),
            "group_size": 32,
            "desc_act": True,
            "texts": calibration_texts()[:64],
        },
        "ids": str(work / "ids.pt"),
        "forward": [
            {"ckpt": str(work / "theirs"), "out": str(work / "theirs.pt")},
            {"ckpt": str(gptq_llama), "out": str(work / "ours.pt")},
        ],
    }
    (work / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [PYTHON, str(Path(__file__).with_name("gptqmodel_script.py")), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=work,  # GPTQModel logs to cwd
        env={**os.environ, "GPTQMODEL_CPU_WORKERS": "2", "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ids, {
        "theirs": (work / "theirs", torch.load(work / "theirs.pt")),
        "ours": (gptq_llama, torch.load(work / "ours.pt")),
    }


@pytest.mark.parametrize("which", ["theirs", "ours"])
def test_same_weights_and_logits_as_gptqmodel(gptqmodel_outputs, which):
    """ "theirs": a checkpoint GPTQModel wrote loads in our plugin; "ours": GPTQModel reads ours. Either way
    both sides decode every packed layer to the same bfloat16 weights and compute the same logits."""
    ids, outputs = gptqmodel_outputs
    ckpt, ref = outputs[which]
    model, fmt = load_gptq_model(str(ckpt), dtype=torch.bfloat16)
    assert (fmt.group_size, fmt.desc_act) == (32, True)
    assert len(ref["weights"]) == 14
    for name, weight in ref["weights"].items():
        torch.testing.assert_close(model.get_submodule(name).dequantize(torch.bfloat16).float(), weight, rtol=0, atol=0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    torch.testing.assert_close(logits, ref["logits"], rtol=1e-2, atol=1e-2)
