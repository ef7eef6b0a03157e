"""--quantization_method mxfp4 (--dequantize): a gpt-oss checkpoint with MXFP4 experts loads as trainable
float weights equal to what its blocks and scales encode, trains, and saves as a plain dequantized model."""

import json

import pytest
import torch

from tuning_core.cli import main
from tuning_core.config import make_config
from tuning_core.pipeline import run_training
from tuning_core.testing.mxfp4 import build_mxfp4_gpt_oss, decode_reference, encode

from .helpers import TEXT_FIELD_ARGS, losses, train_args


@pytest.fixture(scope="module")
def mxfp4_model(tmp_path_factory, bpe_tokenizer_dir):
    path = tmp_path_factory.mktemp("gpt_oss_mxfp4")
    reference = build_mxfp4_gpt_oss(path, bpe_tokenizer_dir)
    return path, reference


def test_encoding_matches_the_format():
    """Two values per byte, low nibble first; scale = 2 ** (byte - 127)."""
    codes = torch.tensor([[1, 10] + [0] * 30])  # +0.5, -1.0, zeros
    blocks, scales = encode(codes, torch.tensor([[-1]]))
    assert blocks[0, 0, 0].item() == 1 | (10 << 4) and scales.item() == 126
    assert decode_reference(codes, torch.tensor([[-1]]))[0, :3].tolist() == [0.25, -0.5, 0.0]


def test_checkpoint_is_really_mxfp4(mxfp4_model):
    from safetensors.torch import load_file

    path, _ = mxfp4_model
    state = load_file(str(path / "model.safetensors"))
    blocks = state["model.layers.0.mlp.experts.gate_up_proj_blocks"]
    assert blocks.dtype == torch.uint8 and blocks.shape == (4, 128, 2, 16)
    assert "model.layers.0.mlp.experts.gate_up_proj" not in state
    assert json.loads((path / "config.json").read_text())["quantization_config"]["quant_method"] == "mxfp4"


def test_loads_dequantized_to_exactly_the_encoded_weights(mxfp4_model):
    from tuning_core.builtin.model_loader import tuning_core_load_model

    path, reference = mxfp4_model
    config = make_config(model_name_or_path=str(path), quantization_method="mxfp4", torch_dtype="float32")
    loaded = tuning_core_load_model(config=config, purpose="train")
    params = dict(loaded.model.named_parameters())
    for name, expected in reference.items():
        assert params[name].dtype == torch.float32 and params[name].requires_grad
        torch.testing.assert_close(params[name].detach(), expected, rtol=0, atol=0)
    assert "MXFP4 dequantized" in loaded.description


def test_trains_and_saves_a_plain_model(mxfp4_model, twitter_data, tmp_path):
    from safetensors.torch import load_file

    path, reference = mxfp4_model
    out = tmp_path / "out"
    run_training(
        [
            str(a)
            for a in train_args(
                path,
                twitter_data,
                out,
                "--quantization_method",
                "mxfp4",
                "--torch_dtype",
                "float32",
                "--save_model_dir",
                out / "final",
                steps=3,
                batch=4,
                lr="1e-2",
            )
        ]
    )
    values = [v for _, v in losses(out)]
    assert len(values) == 3 and all(v == v for v in values)
    final = out / "final"
    assert "quantization_config" not in json.loads((final / "config.json").read_text())
    saved = load_file(str(final / "model.safetensors"))
    name = "model.layers.0.mlp.experts.down_proj"
    assert saved[name].dtype == torch.float32 and saved[name].shape == reference[name].shape
    assert (saved[name] - reference[name]).abs().max() > 0  # the experts trained


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dequantize", "false"], "--dequantize false keeps gpt-oss experts in MXFP4"),
        ([], "says the checkpoint is not quantized, not MXFP4"),
    ],
)
def test_clear_errors(tiny_llama, mxfp4_model, twitter_data, tmp_path, capsys, flags, message):
    model = mxfp4_model[0] if flags else tiny_llama
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(model),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(tmp_path / "o"),
            *TEXT_FIELD_ARGS,
            "--quantization_method",
            "mxfp4",
            *flags,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
