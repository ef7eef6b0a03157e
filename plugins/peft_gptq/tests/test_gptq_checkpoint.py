"""Quantize the tiny models, write GPTQ checkpoints, load them back through the plugin's loader."""

import json

import pytest
import torch
from peft_gptq_helpers import calibration_texts
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuning_core_peft_gptq.checkpoint import read_gptq_format
from tuning_core_peft_gptq.gptq import gptq_quantize
from tuning_core_peft_gptq.gptq_loader import GPTQLoadError, load_gptq_model
from tuning_core_peft_gptq.qlinear import QuantLinear
from tuning_core_peft_gptq.quantizer import QuantizeOptions, calibration_batches, quantize_model, save_quantized

LINEARS = {"llama": 14, "gpt_bigcode": 8}
CONFIGS = [  # arch, group size, desc_act, sym, checkpoint format
    ("llama", 32, False, True, "gptq"),
    ("llama", 32, True, True, "gptq"),
    ("llama", 16, True, False, "gptq_v2"),
    ("llama", -1, False, False, "gptq"),
    ("gpt_bigcode", 32, True, True, "gptq"),
]


def _eval_ids(src):
    tok = AutoTokenizer.from_pretrained(src)
    return calibration_batches(tok, list(reversed(calibration_texts())), 4, 48)[0]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.double()


def _rel_err(a, b):
    return float((a - b).norm() / b.norm())


def _round_to_nearest(model, group_size, sym):
    from tuning_core_peft_gptq.quantizer import decoder_layers, quantizable

    _, layers = decoder_layers(model)
    for lin in [m for m in layers.modules() if quantizable(m)]:
        res = gptq_quantize(
            lin.weight, torch.eye(lin.in_features), group_size=group_size, sym=sym, damp_percent=0.0, min_zero=1
        )
        lin.weight.data = res.dequantize().t().contiguous()
    return model


@pytest.mark.parametrize("arch,group_size,desc_act,sym,fmt", CONFIGS)
def test_checkpoint_files_follow_the_gptq_format(gptq_checkpoint, arch, group_size, desc_act, sym, fmt):
    path = gptq_checkpoint(arch, group_size, desc_act, sym, fmt)
    qc = json.loads((path / "quantize_config.json").read_text())
    assert {k: qc[k] for k in ("bits", "group_size", "desc_act", "sym", "quant_method", "checkpoint_format")} == {
        "bits": 4,
        "group_size": group_size,
        "desc_act": desc_act,
        "sym": sym,
        "quant_method": "gptq",
        "checkpoint_format": fmt,
    }
    assert json.loads((path / "config.json").read_text())["quantization_config"]["quant_method"] == "gptq"
    tensors = load_file(str(path / "model.safetensors"))
    packed = sorted(k[: -len(".qweight")] for k in tensors if k.endswith(".qweight"))
    assert len(packed) == LINEARS[arch]
    for p in packed:
        qweight, scales = tensors[f"{p}.qweight"], tensors[f"{p}.scales"]
        in_f, out_f = qweight.shape[0] * 8, qweight.shape[1]
        groups = 1 if group_size == -1 else in_f // group_size
        assert qweight.dtype == tensors[f"{p}.qzeros"].dtype == tensors[f"{p}.g_idx"].dtype == torch.int32
        assert scales.dtype == torch.float16 and scales.shape == (groups, out_f)
        assert tensors[f"{p}.qzeros"].shape == (groups, out_f // 8) and tensors[f"{p}.g_idx"].shape == (in_f,)
        assert f"{p}.weight" not in tensors
    assert "lm_head.weight" in tensors or arch == "gpt_bigcode"  # bigcode ties lm_head to the embeddings


@pytest.mark.parametrize("arch,group_size,desc_act,sym,fmt", CONFIGS)
def test_loaded_logits_close_to_float_and_better_than_round_to_nearest(
    gptq_checkpoint, request, arch, group_size, desc_act, sym, fmt
):
    src = request.getfixturevalue(f"tiny_{arch.replace('_', '')}")
    model, loaded_fmt = load_gptq_model(str(gptq_checkpoint(arch, group_size, desc_act, sym, fmt)))
    assert (loaded_fmt.group_size, loaded_fmt.desc_act, loaded_fmt.sym) == (group_size, desc_act, sym)
    assert sum(isinstance(m, QuantLinear) for m in model.modules()) == LINEARS[arch]
    assert not isinstance(model.get_output_embeddings(), QuantLinear)
    ids = _eval_ids(src)
    ref = _logits(AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32), ids)
    rtn = _logits(
        _round_to_nearest(AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32), group_size, sym), ids
    )
    err, err_rtn = _rel_err(_logits(model, ids), ref), _rel_err(rtn, ref)
    assert err < 0.08, err  # 4-bit weights on a random tiny model: a few percent
    assert err < 0.75 * err_rtn, (err, err_rtn)  # GPTQ: about half the error of round-to-nearest


@pytest.mark.parametrize(
    "arch,group_size,desc_act,sym,fmt",
    [
        ("llama", 24, True, False, "gptq"),  # 24 does not divide 64 or 128: partial last groups
        ("gpt_bigcode", 16, False, True, "gptq_v2"),
    ],
)
def test_round_trip_is_exact(tmp_path, request, arch, group_size, desc_act, sym, fmt):
    """The loaded checkpoint computes exactly what the quantizer's in-memory fake-quantized model computed."""
    src = request.getfixturevalue(f"tiny_{arch.replace('_', '')}")
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    opts = QuantizeOptions(group_size=group_size, desc_act=desc_act, sym=sym, checkpoint_format=fmt)
    results = quantize_model(model, calibration_batches(tok, calibration_texts(), 8, 32), opts, log=lambda _: None)
    ids = _eval_ids(src)
    fake = _logits(model, ids)
    save_quantized(model, results, opts.format(), tmp_path, tok)
    loaded, _ = load_gptq_model(str(tmp_path))
    torch.testing.assert_close(_logits(loaded, ids), fake, rtol=1e-5, atol=1e-5)
    for name, res in results.items():
        torch.testing.assert_close(loaded.get_submodule(name).dequantize(), res.dequantize(), rtol=0, atol=0)


def test_bfloat16_load(gptq_checkpoint, tiny_llama):
    model, _ = load_gptq_model(str(gptq_checkpoint("llama", 32, True)), dtype=torch.bfloat16)
    ids = _eval_ids(tiny_llama)
    f32, _ = load_gptq_model(str(gptq_checkpoint("llama", 32, True)))
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert _rel_err(_logits(model, ids), _logits(f32, ids)) < 0.02


def test_read_format_and_refusals(tiny_llama, gptq_checkpoint, tmp_path):
    assert read_gptq_format(tiny_llama) is None
    with pytest.raises(GPTQLoadError, match="not a GPTQ checkpoint"):
        load_gptq_model(str(tiny_llama))
    # Only quantization_config in config.json (no quantize_config.json) is enough to recognise one.
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(gptq_checkpoint("llama", 32, False), copy)
    (copy / "quantize_config.json").unlink()
    assert read_gptq_format(copy).group_size == 32
    cfg = json.loads((copy / "config.json").read_text())
    cfg["quantization_config"]["bits"] = 8
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GPTQLoadError, match="bits=8"):
        load_gptq_model(str(copy))
