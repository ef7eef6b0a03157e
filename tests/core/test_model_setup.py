"""Target-module rules, pad-token handling and the loader's errors."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuning_core.builtin.peft import resolve_target_modules
from tuning_core.errors import ConfigError, UserError
from tuning_core.pipeline import ensure_pad_token


@pytest.fixture(scope="module")
def llama(tiny_llama):
    return AutoModelForCausalLM.from_pretrained(tiny_llama)


def test_all_linear_wins_over_lm_head(llama):
    assert resolve_target_modules(["lm_head", "all-linear"], llama) == "all-linear"
    assert resolve_target_modules(["all-linear"], llama) == "all-linear"


def test_named_modules_kept_lm_head_only_when_named(llama):
    assert resolve_target_modules(["q_proj", "lm_head"], llama) == ["q_proj", "lm_head"]


def test_defaults_come_from_peft_per_architecture(llama):
    assert sorted(resolve_target_modules(None, llama)) == ["q_proj", "v_proj"]


def test_unknown_architecture_asks_for_target_modules():
    class Odd:
        config = type("C", (), {"model_type": "my-own-arch"})()

    with pytest.raises(ConfigError, match="pass --target_modules"):
        resolve_target_modules(None, Odd())


def test_pad_token_reuses_a_special_token_without_resize(tiny_llama):
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    rows = model.get_input_embeddings().weight.shape[0]
    assert tok.pad_token is None
    assert ensure_pad_token(model, tok) is True
    assert tok.pad_token == tok.unk_token and len(tok) == rows
    assert model.get_input_embeddings().weight.shape[0] == rows
    assert model.config.pad_token_id == tok.pad_token_id
    assert ensure_pad_token(model, tok) is False  # idempotent


def test_pad_token_prefers_a_pad_like_token(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<|finetune_right_pad_id|>": 2, "a": 3}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token=None)), bos_token="<s>", eos_token="</s>"
    )
    from tuning_core.builtin.tokens import existing_pad_token

    assert existing_pad_token(tok) == "<|finetune_right_pad_id|>"
    assert (
        existing_pad_token(
            PreTrainedTokenizerFast(
                tokenizer_object=Tokenizer(models.WordLevel({"<s>": 0, "</s>": 1}, unk_token=None)), eos_token="</s>"
            )
        )
        == "</s>"
    )


def test_pad_token_added_and_resized_only_without_special_tokens(tiny_llama):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token=None)))
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.resize_token_embeddings(2)
    assert ensure_pad_token(model, tok) is True
    assert tok.pad_token == "<pad>" and tok.pad_token_id == 2
    assert model.get_input_embeddings().weight.shape[0] == 3


def test_spare_embedding_rows_avoid_a_resize(tmp_path, bpe_tokenizer_dir):
    from tuning_core.testing.tiny import build_model

    path = build_model(tmp_path, tokenizer_dir=bpe_tokenizer_dir, vocab_size_override=640)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ensure_pad_token(model, tok)
    assert model.get_input_embeddings().weight.shape[0] == 640


def test_loader_errors_are_user_errors(tmp_path):
    from tuning_core.builtin.model_loader import tuning_core_load_model
    from tuning_core.config import make_config

    with pytest.raises(UserError, match="does not exist"):
        tuning_core_load_model(make_config(model_name_or_path=str(tmp_path / "nope")), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="cannot load"):
        tuning_core_load_model(make_config(model_name_or_path=str(tmp_path / "empty")), "train")


def test_trust_remote_code_is_never_implied(tiny_llama):
    from tuning_core.config import make_config

    assert make_config(model_name_or_path=str(tiny_llama)).trust_remote_code is False
