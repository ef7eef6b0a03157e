"""Runs inside a separate venv that has GPTQModel (never in the shared environment).

    python gptqmodel_script.py JOB.json

JOB: {"quantize": {"src", "out", "group_size", "desc_act", "texts"} (optional),
      "forward": [{"ckpt", "out"}...], "ids": path of a saved LongTensor}
GPTQModel quantizes with its own GPTQ, then its own torch kernel computes
bfloat16 logits (its CPU kernel serves only float16/bfloat16) and dequantizes
every packed layer of each checkpoint.
"""

import json
import os
import sys

os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")

import torch


def quantize(job):
    from gptqmodel import GPTQModel, QuantizeConfig

    cfg = QuantizeConfig(
        bits=4, group_size=job["group_size"], desc_act=job["desc_act"], sym=True, offload_to_disk=False
    )
    model = GPTQModel.load(job["src"], cfg, device="cpu")
    model.quantize(job["texts"], batch_size=4)
    model.save(job["out"])


def forward(ckpt, ids, out):
    from gptqmodel import BACKEND, GPTQModel

    model = GPTQModel.load(ckpt, backend=BACKEND.TORCH, device="cpu", dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model.model(input_ids=ids).logits
        weights = {
            name: m.dequantize_weight().float()
            for name, m in model.model.named_modules()
            if hasattr(m, "qweight") and hasattr(m, "dequantize_weight")
        }
    torch.save({"logits": logits.float(), "weights": weights}, out)


if __name__ == "__main__":
    job = json.loads(open(sys.argv[1]).read())
    if job.get("quantize"):
        quantize(job["quantize"])
    ids = torch.load(job["ids"])
    for item in job["forward"]:
        forward(item["ckpt"], ids, item["out"])
