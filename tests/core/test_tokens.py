"""Growing the tokenizer: --add_special_tokens, --embedding_size_multiple_of; LoRA saves the new rows; infer/merge."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuning_core.builtin.tokens import grow_tokenizer
from tuning_core.cli import main
from tuning_core.config import make_config
from tuning_core.errors import ConfigError
from tuning_core.pipeline import run_training
from tuning_core.plugins import get_plugin_manager

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


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(embedding_size_multiple_of=0), "must be a positive integer"),
        (dict(add_special_tokens=["<a>", "<a>"]), "given twice"),
        (dict(add_special_tokens=[" "]), "cannot be empty"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        get_plugin_manager().hook.tuning_core_validate_config(config=make_config(**values))


@pytest.fixture(scope="module")
def grown_lora(tiny_llama, twitter_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("grown")
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--peft_method",
            "lora",
            "--r",
            "4",
            "--target_modules",
            "q_proj",
            "v_proj",
            "--add_special_tokens",
            *NEW,
            "--embedding_size_multiple_of",
            "64",
            "--save_model_dir",
            out / "final",
            steps=3,
        )
    )
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
    assert not torch.equal(
        trained_lm_head.trainable_tokens_delta["default"].detach(), trained_lm_head.base_layer.weight[ids].detach()
    )  # the new rows trained


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


def supported_modules(model) -> set[str]:
    """vLLM adapts every linear layer (by leaf name) plus its embedding modules."""
    return {n.rpartition(".")[2] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def test_export_vllm_puts_new_rows_in_their_own_file(grown_lora, tiny_llama, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    from tuning_core.export import vllm_layout_problems

    final, result = grown_lora
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    supported = supported_modules(base)
    problems = vllm_layout_problems(final, supported)
    assert any("trainable_tokens_delta: not a LoRA weight" in p for p in problems)  # vLLM refuses the raw adapter
    out = tmp_path / "vllm"
    assert main(["export", "--vllm", "--model", str(final), "--output_dir", str(out)]) == 0
    assert vllm_layout_problems(out, supported) == []
    before = load_file(final / "adapter_model.safetensors")
    after = load_file(out / "adapter_model.safetensors")
    assert set(after) == {k for k in before if "lora_A" in k or "lora_B" in k}
    assert all(torch.equal(after[k], before[k]) for k in after)
    new = load_file(out / "new_embeddings.safetensors")
    assert set(new) == {"input_embeddings", "output_embeddings"} and new["input_embeddings"].shape == (2, 64)
    # vLLM appends the new rows to the base vocabulary and applies the LoRA weights: the trained model's outputs.
    tok = AutoTokenizer.from_pretrained(out)
    rows = base.get_input_embeddings().weight.shape[0]
    base.resize_token_embeddings(rows + 2, mean_resizing=False)
    with torch.no_grad():
        base.get_input_embeddings().weight[rows:] = new["input_embeddings"]
        base.get_output_embeddings().weight[rows:] = new["output_embeddings"]
        served = PeftModel.from_pretrained(base, out).eval()
        ids = tok("### Text: call <tool_call> now </tool_call>\n\n### Label:", return_tensors="pt").input_ids
        want = result.trainer.model.eval()(ids).logits[..., : rows + 2]
        torch.testing.assert_close(served(ids).logits, want, rtol=1e-4, atol=1e-4)
    assert json.loads((out / "adapter_config.json").read_text())["trainable_token_indices"] is None


def test_export_refuses_what_vllm_cannot_load(tmp_path, grown_lora):
    import shutil

    final, _ = grown_lora
    dora = tmp_path / "dora"
    shutil.copytree(final, dora)
    cfg = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    assert main(["export", "--vllm", "--model", str(dora), "--output_dir", str(tmp_path / "o1")]) == 1
    (dora / "adapter_config.json").write_text(json.dumps({**cfg, "modules_to_save": ["score"]}))
    assert main(["export", "--vllm", "--model", str(dora), "--output_dir", str(tmp_path / "o2")]) == 1
    (dora / "adapter_config.json").write_text(json.dumps({**cfg, "trainable_token_indices": [1, 2]}))
    assert main(["export", "--vllm", "--model", str(dora), "--output_dir", str(tmp_path / "o3")]) == 1
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


def test_full_fine_tuning_saves_the_grown_model(tiny_llama, twitter_data, tmp_path):
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            tmp_path,
            "--add_special_tokens",
            *NEW,
            "--embedding_size_multiple_of",
            "64",
            "--save_model_dir",
            tmp_path / "final",
            steps=2,
        )
    )
    assert any(line.startswith("[builtin.tokens] added 2 token(s)") for line in result.banner)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    tok = AutoTokenizer.from_pretrained(tmp_path / "final")
    assert model.get_input_embeddings().weight.shape[0] == 576 == model.config.vocab_size  # 514 -> 9 x 64
    assert tok.convert_tokens_to_ids(NEW) == [512, 513]
