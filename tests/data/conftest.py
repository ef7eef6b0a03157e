"""Fixtures for the data tests: loaded tiny tokenizers, and a private cache directory."""

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TUNING_CORE_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def bpe_tok(bpe_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bpe_tokenizer_dir)


@pytest.fixture(scope="session")
def sp_tok(sp_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(sp_tokenizer_dir)


@pytest.fixture(params=["bpe", "sp"])
def tok(request):
    return request.getfixturevalue(f"{request.param}_tok")
