"""Bad data configs as the user meets them: one line naming the file, the dataset and the key; exit code 2;
no traceback; before the model or tokenizer loads."""

import pytest
import yaml

from tuning_core.cli import main

from .helpers import write_jsonl

ROWS = [{"input": f"in {i}", "output": f"out {i}"} for i in range(5)]


@pytest.fixture(autouse=True)
def builtins_only(plugins_enabled):
    plugins_enabled()


def handler(name="tokenize_and_apply_input_masking", **fn_kwargs):
    fn_kwargs = fn_kwargs or {"input_column_name": "input", "output_column_name": "output"}
    return {"name": name, "arguments": {"remove_columns": "all", "fn_kwargs": fn_kwargs}}


def scenario(tmp_path, case):
    data = str(write_jsonl(tmp_path / "d.jsonl", ROWS))
    ds = {"name": "alpaca", "data_paths": [data], "data_handlers": [handler()]}
    processor = {"type": "default"}
    if case == "unknown_handler":
        ds["data_handlers"] = [handler("tokenize_and_apply_input_mask")]
    elif case == "unknown_key":
        ds["sampeling"] = 0.5
    elif case == "unknown_processor_key":
        processor["streamin"] = True
    elif case == "missing_path":
        ds["data_paths"] = [str(tmp_path / "nope.jsonl")]
    elif case == "empty_glob":
        ds["data_paths"] = [str(tmp_path / "*.parquet")]
    elif case == "negative_sampling":
        ds["sampling"] = -0.2
    elif case == "sum_not_one":
        return [dict(ds, sampling=0.5), dict(ds, name="other", sampling=0.3)], processor
    elif case == "no_training_data":
        ds["split"] = {"train": 0.05, "validation": 0.5}
    elif case == "bad_fn_kwarg":
        ds["data_handlers"] = [handler(input_column_name="input", output_column_name="output", add_eos=True)]
    elif case == "bad_map_argument":
        ds["data_handlers"][0]["arguments"]["remove_column"] = "all"
    return [ds], processor


CASES = {
    "unknown_handler": "dataset 'alpaca': data_handlers[0]: unknown data handler 'tokenize_and_apply_input_mask'; "
    "did you mean 'tokenize_and_apply_input_masking'? (known: apply_custom_jinja_template,",
    "unknown_key": "dataset 'alpaca': unknown key 'sampeling'; did you mean 'sampling'?",
    "unknown_processor_key": "dataprocessor: unknown key 'streamin'; did you mean 'streaming'?",
    "missing_path": "dataset 'alpaca': data_paths {tmp}/nope.jsonl: no such file or directory",
    "empty_glob": "dataset 'alpaca': data_paths {tmp}/*.parquet: the pattern matches no files",
    "negative_sampling": "dataset 'alpaca': sampling must be a number between 0 and 1, got -0.2",
    "sum_not_one": "the sampling ratios of the training datasets add up to 0.8, not 1 (alpaca: 0.5, other: 0.3)",
    "no_training_data": "dataset 'alpaca': split train 0.05 of 5 examples leaves no training data",
    "bad_fn_kwarg": "data_handlers[0] (tokenize_and_apply_input_masking): handler 'tokenize_and_apply_input_masking' "
    "does not take fn_kwargs.add_eos; did you mean 'add_eos_token'?",
    "bad_map_argument": "handler 'tokenize_and_apply_input_masking' has no argument 'remove_column'; did you mean "
    "'remove_columns'?",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_config_is_one_line_exit_2(tmp_path, capsys, bpe_tokenizer_dir, case):
    datasets, processor = scenario(tmp_path, case)
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump({"dataprocessor": processor, "datasets": datasets}))
    code = main(["data", "preview", "--tokenizer_name_or_path", str(bpe_tokenizer_dir), "--data_config_path", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(cfg) in err and CASES[case].format(tmp=tmp_path) in err, err


def test_training_data_path_and_data_config_together(tmp_path, capsys, bpe_tokenizer_dir):
    cfg = tmp_path / "data.yaml"
    data = str(write_jsonl(tmp_path / "d.jsonl", ROWS))
    cfg.write_text(yaml.safe_dump({"datasets": [{"name": "a", "data_paths": [data]}]}))
    code = main(
        [
            "data",
            "preview",
            "--tokenizer_name_or_path",
            str(bpe_tokenizer_dir),
            "--data_config_path",
            str(cfg),
            "--training_data_path",
            data,
        ]
    )
    assert code == 2 and "--training_data_path and --data_config_path are alternatives" in capsys.readouterr().err


def test_preview_and_processing_only_accept_a_data_config(tmp_path, capsys, bpe_tokenizer_dir):
    import pyarrow.parquet as pq

    cfg = tmp_path / "data.yaml"
    data = str(write_jsonl(tmp_path / "d.jsonl", ROWS))
    cfg.write_text(
        yaml.safe_dump(
            {
                "datasets": [
                    {
                        "name": "a",
                        "data_paths": [data],
                        "data_handlers": [handler()],
                        "split": {"train": 0.6, "validation": 0.4},
                    }
                ]
            }
        )
    )
    code = main(
        [
            "data",
            "preview",
            "--tokenizer_name_or_path",
            str(bpe_tokenizer_dir),
            "--data_config_path",
            str(cfg),
            "-n",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "3 examples" in out and "[[" in out
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(bpe_tokenizer_dir),
            "--data_config_path",
            str(cfg),
            "--output_dir",
            str(tmp_path / "o"),
            "--do_dataprocessing_only",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert pq.read_table(tmp_path / "o" / "train_dataset" / "ds_00000.parquet").num_rows == 3
    assert pq.read_table(tmp_path / "o" / "validation_dataset" / "ds_00000.parquet").num_rows == 2
