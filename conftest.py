"""Shared test fixtures for the core and every plugin: tiny models and tokenizers, built once per session."""

import os

import pytest

from tuning_core.testing.gpu import use_interpreter_without_gpu

# Triton reads TRITON_INTERPRET when a kernel is decorated, and any test folder may import kernels first:
# set it once, before anything, and only on machines without an NVIDIA GPU (the interpreter runs kernels on
# CPU tensors; on a GPU the gpu-marked tests must run compiled kernels).
use_interpreter_without_gpu()

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_data_cache(tmp_path_factory):
    """Processed-data caches go to a per-session folder, never the user's ~/.cache."""
    os.environ.setdefault("TUNING_CORE_CACHE", str(tmp_path_factory.mktemp("tc_cache")))


@pytest.fixture(scope="session")
def bpe_tokenizer_dir(tmp_path_factory):
    from tuning_core.testing.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tok_bpe")
    build_tokenizer(path, kind="bpe")
    return path


@pytest.fixture(scope="session")
def sp_tokenizer_dir(tmp_path_factory):
    from tuning_core.testing.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tok_sp")
    build_tokenizer(path, kind="sentencepiece")
    return path


def _model_fixture(arch, tokenizer_fixture="bpe_tokenizer_dir"):
    @pytest.fixture(scope="session")
    def _fixture(tmp_path_factory, request):
        from tuning_core.testing.tiny import build_model

        tok_dir = request.getfixturevalue(tokenizer_fixture)
        return build_model(tmp_path_factory.mktemp(f"model_{arch}"), arch=arch, tokenizer_dir=tok_dir)

    return _fixture


tiny_llama = _model_fixture("llama")
tiny_gptbigcode = _model_fixture("gpt_bigcode")
tiny_mistral = _model_fixture("mistral")
tiny_granite = _model_fixture("granite")
tiny_mixtral = _model_fixture("mixtral")
tiny_llama_sp = _model_fixture("llama", "sp_tokenizer_dir")


@pytest.fixture(scope="session")
def twitter_data():
    """Path to the bundled JSONL dataset (fields: "Tweet text", "text_label", "output")."""
    from tuning_core.testing.tiny import bundled_dataset_path

    return bundled_dataset_path()


@pytest.fixture
def plugins_enabled():
    """Call with entry-point names to load only those plugins (none: built-ins only) for one test."""
    from contextlib import ExitStack

    from tuning_core.testing.plugins import only_plugins

    with ExitStack() as stack:
        yield lambda *names: stack.enter_context(only_plugins(*names))


@pytest.fixture
def builtin_plugins_only():
    """A plugin manager with only the built-ins, rebuilt for this test and forgotten after it."""
    from tuning_core.plugins import get_plugin_manager
    from tuning_core.testing.plugins import only_plugins

    with only_plugins():
        yield get_plugin_manager()
