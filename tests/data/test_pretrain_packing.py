"""--packing (fms-hf-tuning's extended pretraining): examples joined with EOS, cut into max_seq_length chunks,
every token trained."""

import pytest
import yaml

from tuning_core.data import prepare_datasets
from tuning_core.errors import ConfigError

from .helpers import config, write_jsonl


def test_packing_concatenates_and_chunks(tmp_path, tok, twitter_data):
    plain = prepare_datasets(config(training_data_path=str(twitter_data), dataset_text_field="output"), tok)
    packed = prepare_datasets(
        config(training_data_path=str(twitter_data), dataset_text_field="output", packing=True, max_seq_length=64), tok
    )
    flat = [t for row in plain.train["input_ids"] for t in row]
    chunks = packed.train["input_ids"]
    assert [t for c in chunks for t in c] == flat  # nothing lost, order kept, each example ends in EOS
    assert all(len(c) == 64 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 64
    assert packed.train["labels"] == chunks  # every token trained
    assert packed.stats["packed_from"] == 240 and packed.stats["num_examples"] == len(chunks)


def test_packing_streams(tmp_path, bpe_tok):
    data = write_jsonl(tmp_path / "t.jsonl", [{"text": f"some text number {i}"} for i in range(30)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({"dataprocessor": {"streaming": True}, "datasets": [{"name": "t", "data_paths": [str(data)]}]})
    )
    out = prepare_datasets(
        config(data_config_path=str(cfg), dataset_text_field="text", packing=True, max_seq_length=32), bpe_tok
    )
    rows = list(out.train)
    assert all(len(r["input_ids"]) == 32 for r in rows[:-1]) and rows[0]["labels"] == rows[0]["input_ids"]


def test_packing_with_a_response_template_is_an_error(twitter_data, bpe_tok):
    with pytest.raises(ConfigError, match="--packing trains every token"):
        prepare_datasets(
            config(
                training_data_path=str(twitter_data),
                dataset_text_field="output",
                response_template="\\n### Label:",
                packing=True,
            ),
            bpe_tok,
        )
