"""Growing the tokenizer: --add_special_tokens, --embedding_size_multiple_of; LoRA saves the new rows; infer/merge."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuning_core.builtin.tokens import grow_tokenizer
from tuning_core.cli import main
from tuning_core.config import make_config
from tuning_core.errors import ConfigError
from tuning_core.plugins import get_plugin_manager
from tuning_core.train import run_training

from .helpers import train_args

NEW = ["<tool_call>", "</tool_call>"]


def test_grow_adds_tokens_pads_to_a_multiple_and_starts_rows_at_the_mean(tiny_llama):
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    rows = old_in.shape[0]
    line = grow_tokenizer(make_config(add_special_tokens=NEW, embedding_size_multiple_of=48), model, tok)
    assert len(tok) == rows + 2 and tok.convert_tokens_to_ids(NEW) == [rows, rows + 1]
    assert tok("a <tool_call> b", add_special_tokens=False).input_ids.count(rows) == 1  # one token, never split
    size = model.get_input_embeddings().weight.shape[0]
    assert size % 48 == 0 and size >= rows + 2 and f"-> {size} rows" in line
    torch.testing.assert_close(model.get_input_embeddings().weight[rows:], old_in.mean(0).expand(size - rows, -1))
    torch.testing.assert_close(model.get_output_embeddings().weight[rows:], old_out.mean(0).expand(size - rows, -1))
    assert tok.tuning_core_new_token_ids == [rows, rows + 1]


def test_nothing_to_grow_changes_nothing(tiny_llama):
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    rows = model.get_input_embeddings().weight.shape[0]
    assert grow_tokenizer(make_config(), model, tok) is None
    assert model.get_input_embeddings().weight.shape[0] == rows == len(tok)


@pytest.mark.parametrize("values, message", [
    (dict(embedding_size_multiple_of=0), "must be a positive integer"),
    (dict(add_special_tokens=["<a>", "<a>"]), "given twice"),
    (dict(add_special_tokens=[" "]), "cannot be empty"),
])
def test_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        get_plugin_manager().hook.tuning_core_validate_config(config=make_config(**values))


@pytest.fixture(scope="module")
def grown_lora(tiny_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grown")
    result = run_training(train_args(tiny_llama, twitter_data, out, "--peft_method", "lora", "--r", "4",
                                     "--target_modules", "q_proj", "v_proj", "--add_special_tokens", *NEW,
                                     "--embedding_size_multiple_of", "64", "--save_model_dir", out / "final",
                                     steps=3))
    return out / "final", result


def test_lora_saves_new_rows_as_trainable_tokens(grown_lora):
    from safetensors.torch import load_file

    final, result = grown_lora
    cfg = json.loads((final / "adapter_config.json").read_text())
    tok = AutoTokenizer.from_pretrained(final)
    ids = tok.convert_tokens_to_ids(NEW)
    assert cfg["trainable_token_indices"] == {"embed_tokens": ids, "lm_head": ids}
    weights = load_file(final / "adapter_model.safetensors")
    deltas = {k: w for k, w in weights.items() if "trainable_tokens_delta" in k}
    assert len(deltas) == 2 and all(w.shape[0] == 2 for w in deltas.values())
    trained_lm_head = result.trainer.model.base_model.model.lm_head.token_adapter
    assert not torch.equal(trained_lm_head.trainable_tokens_delta["default"].detach(),
                           trained_lm_head.base_layer.weight[ids].detach())  # the new rows trained


def test_infer_and_merge_handle_the_new_rows(grown_lora, tmp_path):
    from tuning_core.infer import load_for_inference

    final, result = grown_lora
    loaded = load_for_inference(str(final))
    ids = loaded.tokenizer("### Text: call <tool_call> now </tool_call>\n\n### Label:", return_tensors="pt").input_ids
    with torch.no_grad():
        want = result.trainer.model.eval()(ids).logits
        torch.testing.assert_close(loaded.model(ids).logits, want, rtol=1e-4, atol=1e-4)
        assert main(["merge", "--model", str(final), "--output_dir", str(tmp_path / "merged")]) == 0
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
        torch.testing.assert_close(merged(ids).logits, want, rtol=1e-4, atol=1e-4)
    merged_tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert merged_tok.convert_tokens_to_ids(NEW) == loaded.tokenizer.convert_tokens_to_ids(NEW)
