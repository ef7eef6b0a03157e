"""The tuning_core_data_handlers hook: built-in handlers come through it, and a third-party plugin's handler is
used from a data config by name."""

import pytest
import yaml

from tuning_core.data import prepare_datasets
from tuning_core.data.handlers import registered_handlers
from tuning_core.errors import ConfigError, DataError
from tuning_core.plugin_api import DataHandler, hookimpl
from tuning_core.plugins import get_plugin_manager

from .helpers import config, write_jsonl

FMS_NAMES = {
    "tokenize_and_apply_input_masking",
    "apply_custom_jinja_template",
    "apply_tokenizer_chat_template",
    "tokenize_and_apply_chat_template_with_masking",
    "tokenize",
    "duplicate_columns",
    "skip_samples_with_large_columns",
    "remove_columns",
    "select_columns",
    "rename_columns",
}
ROWS = [
    {"input": f"### Input: tweet {i}\n\n### Label:", "output": " complaint" if i % 2 else " no complaint"}
    for i in range(6)
]
MASKING = {
    "name": "tokenize_and_apply_input_masking",
    "arguments": {"remove_columns": "all", "fn_kwargs": {"input_column_name": "input", "output_column_name": "output"}},
}


def write_config(tmp_path, handlers, rows=ROWS):
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"datasets": [{"name": "d", "data_paths": [str(data)], "data_handlers": handlers}]}))
    return str(path)


def trained_texts(out, tok):
    return [
        tok.decode([t for t, lab in zip(r["input_ids"], r["labels"], strict=False) if lab != -100]) for r in out.train
    ]


def test_tuning_core_data_handlers_builtins_are_registered_through_the_hook(plugins_enabled):
    plugins_enabled()
    pm = get_plugin_manager()
    owners = {impl.plugin_name for impl in pm.hook.tuning_core_data_handlers.get_hookimpls()}
    assert owners == {"builtin.data"}
    assert FMS_NAMES <= set(registered_handlers(pm))


def test_tuning_core_data_handlers_third_party_entry_point_used_by_name(tmp_path, bpe_tok, plugins_enabled):
    plugins_enabled("step_counter")  # examples/third_party_plugin, loaded through its entry point
    assert "tag_output" in registered_handlers()
    tag = {"name": "tag_output", "arguments": {"fn_kwargs": {"column_name": "output", "tag": " [done]"}}}
    out = prepare_datasets(config(data_config_path=write_config(tmp_path, [tag, MASKING])), bpe_tok)
    assert trained_texts(out, bpe_tok)[:2] == [" no complaint [done]</s>", " complaint [done]</s>"]


class RowPlugin:
    """Handlers in fms-hf-tuning's style: a row map, a batched map, a filter."""

    @hookimpl
    def tuning_core_data_handlers(self):
        def shout(element, column_name, **kwargs):
            assert "tokenizer" in kwargs and "column_names" in kwargs  # the pipeline's default arguments
            return {column_name: element[column_name].upper()}

        def exclaim(batch, column_name):
            return {column_name: [v + "!" for v in batch[column_name]]}

        def odd_only(element, column_name):
            return "no" not in element[column_name]

        return {
            "shout": DataHandler(shout),
            "exclaim": DataHandler(exclaim),
            "odd_only": DataHandler(odd_only, kind="filter"),
        }


@pytest.fixture
def row_plugin(plugins_enabled):
    plugins_enabled()
    pm = get_plugin_manager()
    pm.register(RowPlugin(), name="rows")
    yield pm


def test_tuning_core_data_handlers_row_batched_and_filter(tmp_path, bpe_tok, row_plugin):
    handlers = [
        {"name": "odd_only", "arguments": {"fn_kwargs": {"column_name": "output"}}},
        {"name": "shout", "arguments": {"fn_kwargs": {"column_name": "output"}}},
        {"name": "exclaim", "arguments": {"batched": True, "fn_kwargs": {"column_name": "output"}}},
        MASKING,
    ]
    out = prepare_datasets(config(data_config_path=write_config(tmp_path, handlers)), bpe_tok)
    assert trained_texts(out, bpe_tok) == [" COMPLAINT!</s>"] * 3


def test_tuning_core_data_handlers_name_clash_and_handler_failure(tmp_path, bpe_tok, row_plugin):
    class Clash:
        @hookimpl
        def tuning_core_data_handlers(self):
            return {"tokenize": DataHandler(lambda element: element)}

    row_plugin.register(Clash(), name="clash")
    with pytest.raises(ConfigError, match="data handler 'tokenize' is offered by both"):
        registered_handlers(row_plugin)
    row_plugin.unregister(name="clash")
    bad = [{"name": "shout", "arguments": {"fn_kwargs": {"column_name": "missing"}}}]
    with pytest.raises(DataError, match=r"data_handlers\[0\] \(shout\): example 0 \(.*line 1\): KeyError"):
        prepare_datasets(config(data_config_path=write_config(tmp_path, bad)), bpe_tok)


def test_tuning_core_data_handlers_cache_follows_the_handler_code(tmp_path, bpe_tok, plugins_enabled, monkeypatch):
    """An edited handler must not get the data its old version processed from the cache."""
    plugins_enabled()
    pm = get_plugin_manager()
    module = tmp_path / "edited_handler.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(body):
        import importlib
        import sys

        module.write_text(
            f"def mark(element, column_name):\n    return {{column_name: element[column_name] + {body!r}}}\n"
        )
        sys.modules.pop("edited_handler", None)
        return importlib.import_module("edited_handler").mark

    class Plugin:
        fn = None

        @hookimpl
        def tuning_core_data_handlers(self):
            return {"mark": DataHandler(Plugin.fn)}

    pm.register(Plugin(), name="edited")
    handlers = [{"name": "mark", "arguments": {"fn_kwargs": {"column_name": "output"}}}, MASKING]
    path = write_config(tmp_path, handlers)
    Plugin.fn = load(" A")
    first = prepare_datasets(config(data_config_path=path, data_cache=True), bpe_tok)
    Plugin.fn = load(" B")
    second = prepare_datasets(config(data_config_path=path, data_cache=True), bpe_tok)
    assert not second.stats["cache_hit"] and trained_texts(second, bpe_tok)[0] == " no complaint B</s>"
    assert trained_texts(first, bpe_tok)[0] == " no complaint A</s>"
    assert prepare_datasets(config(data_config_path=path, data_cache=True), bpe_tok).stats["cache_hit"]
