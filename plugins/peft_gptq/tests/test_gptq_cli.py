"""`tuning-core quantize` as a user runs it."""

import json
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tuning_core", *map(str, args)], capture_output=True, text=True, timeout=600
    )


def test_quantize_then_load(tiny_llama, tmp_path):
    from peft_gptq_helpers import calibration_texts
    from transformers import AutoModelForCausalLM

    from tuning_core_peft_gptq.gptq_loader import load_gptq_model

    calib = tmp_path / "calib.txt"
    calib.write_text("\n".join(t.replace("\n", " ") for t in calibration_texts()))
    out = tmp_path / "q"
    proc = cli(
        "quantize",
        "--model_name_or_path",
        tiny_llama,
        "--output_dir",
        out,
        "--group_size",
        "32",
        "--desc_act",
        "--sym",
        "false",
        "--calibration_data",
        calib,
        "--num_samples",
        "8",
        "--seq_len",
        "64",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "14 packed layers" in proc.stdout
    qc = json.loads((out / "quantize_config.json").read_text())
    assert (qc["group_size"], qc["desc_act"], qc["sym"], qc["bits"]) == (32, True, False, 4)
    model, _ = load_gptq_model(str(out))
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    ids = torch.tensor([[1, 40, 80, 120, 160, 200, 240, 280]])
    with torch.no_grad():
        got, want = model(input_ids=ids).logits, ref(input_ids=ids).logits
    assert float((got - want).norm() / want.norm()) < 0.1


def test_quantize_refuses_a_gptq_checkpoint(gptq_llama, tmp_path):
    proc = cli("quantize", "--model_name_or_path", gptq_llama, "--output_dir", tmp_path / "again")
    assert proc.returncode == 1 and "already GPTQ-quantized" in proc.stderr
    assert "Traceback" not in proc.stderr
