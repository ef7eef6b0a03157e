"""--data_config_path: fms-hf-tuning's data configs (datasets, handlers, splits, mixing, streaming) and the
flag path as a one-dataset config of the same pipeline."""

import json
from collections import Counter

import pytest
import yaml

from tuning_core.data import prepare_datasets
from tuning_core.data.mixing import interleave
from tuning_core.errors import ConfigError

from .helpers import config, write_jsonl

IO_ROWS = [
    {"input": f"### Input: tweet {i}\n\n### Label:", "output": "complaint" if i % 2 else "no complaint"}
    for i in range(20)
]
TEMPLATE = "### Text: {{Tweet text}}\n\n### Label: {{text_label}}"


def write_config(path, datasets, **processor):
    body = {"dataprocessor": {"type": "default", **processor}, "datasets": datasets}
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return str(path)


def io_handler(**extra):
    return {
        "name": "tokenize_and_apply_input_masking",
        "arguments": {
            "remove_columns": "all",
            "batched": False,
            "fn_kwargs": {"input_column_name": "input", "output_column_name": "output", **extra},
        },
    }


def test_input_masking_handler_equals_the_flag_path(tmp_path, tok):
    data = write_jsonl(tmp_path / "io.jsonl", IO_ROWS)
    cfg = write_config(
        tmp_path / "c.yaml", [{"name": "io", "data_paths": [str(data)], "data_handlers": [io_handler()]}]
    )
    via_config = prepare_datasets(config(data_config_path=cfg), tok)
    via_flags = prepare_datasets(config(training_data_path=str(data)), tok)
    assert via_config.train.to_dict() == via_flags.train.to_dict()
    assert via_config.stats["format"] == "tokenize_and_apply_input_masking"
    ids, labels = via_config.train[1]["input_ids"], via_config.train[1]["labels"]
    trained = [t for t, lab in zip(ids, labels, strict=False) if lab != -100]
    assert tok.decode(trained).lstrip() == "complaint" + tok.eos_token  # response + EOS, exactly


def test_handlers_without_eos_rename_select(tmp_path, bpe_tok):
    rows = [{"instruction": r["input"], "response": r["output"], "junk": 1} for r in IO_ROWS]
    data = write_jsonl(tmp_path / "renamed.jsonl", rows)
    handlers = [
        {"name": "rename_columns", "arguments": {"column_mapping": {"instruction": "input", "response": "output"}}},
        {"name": "select_columns", "arguments": {"column_names": ["input", "output"]}},
        io_handler(add_eos_token=False),
    ]
    cfg = write_config(tmp_path / "c.yaml", [{"name": "r", "data_paths": [str(data)], "data_handlers": handlers}])
    out = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    ref = prepare_datasets(config(training_data_path=str(write_jsonl(tmp_path / "io.jsonl", IO_ROWS))), bpe_tok)
    for got, want in zip(out.train, ref.train, strict=False):  # the same minus the trailing EOS
        assert got["input_ids"] == want["input_ids"][:-1] and got["labels"] == want["labels"][:-1]


def test_custom_jinja_template_then_response_template_flag(tmp_path, bpe_tok, twitter_data):
    handler = {
        "name": "apply_custom_jinja_template",
        "arguments": {
            "remove_columns": "all",
            "batched": False,
            "fn_kwargs": {"formatted_text_column_name": "formatted", "template": TEMPLATE},
        },
    }
    cfg = write_config(
        tmp_path / "c.yaml", [{"name": "t", "data_paths": [str(twitter_data)], "data_handlers": [handler]}]
    )
    out = prepare_datasets(
        config(data_config_path=cfg, dataset_text_field="formatted", response_template="\n### Label:"), bpe_tok
    )
    ref = prepare_datasets(
        config(
            training_data_path=str(twitter_data), data_formatter_template=TEMPLATE, response_template="\n### Label:"
        ),
        bpe_tok,
    )
    assert out.train.to_dict() == ref.train.to_dict() and len(out.train) == 240


def test_split_from_one_file_is_disjoint_and_seeded(tmp_path, bpe_tok):
    rows = [{"input_ids": [1, 10 + i], "labels": [-100, 10 + i]} for i in range(50)]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "p", "data_paths": [str(data)], "split": {"train": 0.8, "validation": 0.2}}],
        seed=7,
    )
    a = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    b = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    train = [r[1] for r in a.train["input_ids"]]
    val = [r[1] for r in a.eval["input_ids"]]
    assert len(train) == 40 and len(val) == 10 and not set(train) & set(val)
    assert sorted(train + val) == list(range(10, 60))
    assert train == [r[1] for r in b.train["input_ids"]]  # same seed, same split
    assert train != list(range(10, 50))  # shuffled


def test_validation_data_path_still_works_with_a_config(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "io.jsonl", IO_ROWS)
    val = write_jsonl(tmp_path / "val.jsonl", IO_ROWS[:3])
    cfg = write_config(tmp_path / "c.yaml", [{"name": "io", "data_paths": [str(data)]}])
    out = prepare_datasets(config(data_config_path=cfg, validation_data_path=str(val)), bpe_tok)
    assert len(out.train) == 20 and len(out.eval) == 3


def pretok(tmp_path, name, token, n):
    return str(write_jsonl(tmp_path / f"{name}.jsonl", [{"input_ids": [1, token, i % 7 + 20]} for i in range(n)]))


@pytest.mark.parametrize("strategy", ["first_exhausted", "all_exhausted"])
def test_mixing_shares_match_the_probabilities(tmp_path, bpe_tok, strategy):
    datasets = [
        {"name": "a", "data_paths": [pretok(tmp_path, "a", 5, 3000)], "sampling": 0.7},
        {"name": "b", "data_paths": [pretok(tmp_path, "b", 6, 3000)], "sampling": 0.2},
        {"name": "c", "data_paths": [pretok(tmp_path, "c", 7, 3000)], "sampling": 0.1},
    ]
    cfg = write_config(tmp_path / "c.yaml", datasets, seed=3, sampling_stopping_strategy=strategy)
    out = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    first = [r[1] for r in out.train["input_ids"]]
    if strategy == "first_exhausted":  # stops when 'a' (the most drawn) runs out
        shares = Counter(first)
        assert shares[5] == 3000
    else:  # goes on until 'c' has been used once: the first 3000*... draws keep the same shares
        shares = Counter(first[:4000])
        assert len(first) > 9000
    total = sum(shares.values())
    for token, p in ((5, 0.7), (6, 0.2), (7, 0.1)):
        assert abs(shares[token] / total - p) < 0.03, (token, shares)
    again = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    assert [r[1] for r in again.train["input_ids"]] == first  # deterministic for a seed


def test_interleave_stopping_strategies():
    pairs = interleave([5, 100], [0.5, 0.5], seed=1, strategy="first_exhausted")
    assert sum(1 for i, _ in pairs if i == 0) == 5 and len(pairs) < 40
    pairs = interleave([5, 20], [0.5, 0.5], seed=1, strategy="all_exhausted")
    rows_b = [r for i, r in pairs if i == 1]
    assert set(rows_b) == set(range(20))  # every dataset used up once
    assert interleave([5, 20], [0.5, 0.5], 2, "all_exhausted") != pairs  # the seed matters


def test_streaming_gives_an_iterable_dataset(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "io.jsonl", IO_ROWS)
    cfg = write_config(tmp_path / "c.yaml", [{"name": "io", "data_paths": [str(data)]}], streaming=True)
    out = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    import datasets

    assert isinstance(out.train, datasets.IterableDataset)
    ref = prepare_datasets(config(training_data_path=str(data)), bpe_tok)
    assert [dict(r) for r in out.train] == [dict(r) for r in ref.train]


def test_streaming_needs_max_steps(tmp_path):
    import types

    from tuning_core.builtin.data import tuning_core_validate_config

    data = write_jsonl(tmp_path / "io.jsonl", IO_ROWS)
    cfg = write_config(tmp_path / "c.yaml", [{"name": "io", "data_paths": [str(data)]}], streaming=True)

    def run_config(max_steps):
        c = config(data_config_path=cfg)
        c.training_args = types.SimpleNamespace(max_steps=max_steps)
        return c

    with pytest.raises(ConfigError, match="streaming is true.*--max_steps"):
        tuning_core_validate_config(run_config(-1))
    tuning_core_validate_config(run_config(5))


def test_fms_hf_tuning_configs_run_unchanged(tmp_path, bpe_tok):
    """fms-hf-tuning's own predefined configs (tests/artifacts/predefined_data_configs), FILE_PATH filled in."""
    data = write_jsonl(tmp_path / "io.jsonl", IO_ROWS * 5)
    text = """dataprocessor:
    type: default
    sampling_stopping_strategy: first_exhausted
    seed: 66
datasets:
  - name: dataset_1
    split:
      train: 0.8
      validation: 0.2
    sampling: 0.3
    data_paths:
      - "FILE_PATH"
    data_handlers:
      - name: tokenize_and_apply_input_masking
        arguments:
          remove_columns: all
          batched: false
          fn_kwargs:
            input_column_name: input
            output_column_name: output
  - name: dataset_2
    split:
      train: 0.6
      validation: 0.2
    sampling: 0.7
    data_paths:
      - "FILE_PATH"
    data_handlers:
      - name: tokenize_and_apply_input_masking
        arguments:
          remove_columns: all
          batched: false
          fn_kwargs:
            input_column_name: input
            output_column_name: output
  - name: dataset_4
    split:
      train: 0.0
      validation: 0.3
    data_paths:
      - "FILE_PATH"
    data_handlers:
      - name: tokenize_and_apply_input_masking
        arguments:
          remove_columns: all
          batched: false
          fn_kwargs:
            input_column_name: input
            output_column_name: output
""".replace("FILE_PATH", str(data))
    (tmp_path / "mix.yaml").write_text(text)
    out = prepare_datasets(config(data_config_path=str(tmp_path / "mix.yaml")), bpe_tok)
    assert len(out.eval) == 20 + 20 + 30 and len(out.train) > 0
    assert set(out.stats["datasets"]) == {"dataset_1", "dataset_2", "dataset_4"}


def test_chat_handler_with_the_peers_extra_argument(tmp_path, bpe_tok):
    from .test_chat import CONVERSATION, TEMPLATE

    data = write_jsonl(tmp_path / "chat.jsonl", [CONVERSATION] * 4)
    handler = {
        "name": "tokenize_and_apply_chat_template_with_masking",
        "arguments": {
            "remove_columns": "all",
            "batched": False,
            "fn_kwargs": {"formatted_text_column_name": "formatted_chat_data", "conversation_column": "messages"},
        },
    }
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "chat", "data_paths": [str(data)], "data_handlers": [handler]}],
        chat_template=TEMPLATE,
    )
    out = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    ref = prepare_datasets(config(training_data_path=str(data), chat_template=TEMPLATE), bpe_tok)
    assert out.train.to_dict() == ref.train.to_dict()


def test_json_config_and_relative_paths(tmp_path, bpe_tok, monkeypatch):
    write_jsonl(tmp_path / "io.jsonl", IO_ROWS)
    (tmp_path / "c.json").write_text(json.dumps({"datasets": [{"name": "io", "data_paths": ["io.jsonl"]}]}))
    monkeypatch.chdir("/")
    out = prepare_datasets(config(data_config_path=str(tmp_path / "c.json")), bpe_tok)
    assert len(out.train) == 20


def test_builder_reads_files_without_an_extension(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "io.data", IO_ROWS)
    cfg = write_config(tmp_path / "c.yaml", [{"name": "io", "data_paths": [str(data)], "builder": "json"}])
    out = prepare_datasets(config(data_config_path=cfg), bpe_tok)
    ref = prepare_datasets(config(training_data_path=str(write_jsonl(tmp_path / "io.jsonl", IO_ROWS))), bpe_tok)
    assert out.train.to_dict() == ref.train.to_dict()
    cfg = write_config(tmp_path / "d.yaml", [{"name": "io", "data_paths": [str(data)]}])
    with pytest.raises(ConfigError, match="unsupported file extension '.data'"):
        prepare_datasets(config(data_config_path=cfg), bpe_tok)
