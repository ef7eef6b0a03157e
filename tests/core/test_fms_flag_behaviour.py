"""fms-hf-tuning's remaining flags do what they say: log file name, resource scanner, attention choice,
hub-cache models, dataset shards, and the clear refusal of vision-language data."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from tuning_core.builtin.model_loader import resolve_attention
from tuning_core.cli import main
from tuning_core.config import make_config
from tuning_core.errors import ConfigError
from tuning_core.pipeline import run_training

from .helpers import TEXT_FIELD_ARGS, train_args


def _vm_rss_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def scanned_run(tiny_llama, twitter_data, tmp_path_factory):
    import time

    out = tmp_path_factory.mktemp("fms_flags")
    start = time.perf_counter()
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--training_logs_filename",
            "my_log.jsonl",
            "--trackers",
            "file_logger",
            "hf_resource_scanner",
            "--scanner_output_filename",
            "scan.json",
            "--use_flash_attn",
            "true",
            "--flash_attn_implementation",
            "eager",
            steps=3,
            batch=4,
        )
    )
    return out, result, time.perf_counter() - start


def test_training_logs_filename(scanned_run):
    from tuning_core.report import make_report

    out, _, _ = scanned_run
    assert not (out / "training_logs.jsonl").exists()
    rows = [json.loads(line) for line in open(out / "my_log.jsonl")]
    assert [r["data"]["step"] for r in rows if r["name"] == "training_loss"] == [1, 2, 3]
    _, summary = make_report(str(out), str(out / "curves.png"), log_file="my_log.jsonl")
    assert "3" in summary and (out / "curves.png").stat().st_size > 0


def test_scanner_writes_peak_memory_and_time(scanned_run):
    out, result, wall = scanned_run
    scan = json.loads((out / "scan.json").read_text())
    assert scan["device"] == "cpu"
    timing = scan["time"]
    assert timing["steps"] == timing["global_step"] == 3
    assert 0 < timing["step_seconds_mean"] * 3 <= timing["train_seconds"] < wall
    assert timing["train_seconds"] == pytest.approx(result.train_output.metrics["train_runtime"], rel=0.2, abs=0.5)
    assert timing["model_load_seconds"] > 0 and timing["data_preprocessing_seconds"] > 0
    # ru_maxrss is this process's peak: at least what it holds now, and more than an empty interpreter.
    assert scan["peak_memory"]["process_peak_rss_bytes"] >= 100 * 2**20
    assert scan["peak_memory"]["process_peak_rss_bytes"] >= _vm_rss_bytes() * 0.9


def test_flash_attn_implementation_reaches_the_model(scanned_run):
    _, result, _ = scanned_run
    assert result.trainer.model.config._attn_implementation == "eager"
    assert any("eager" in line for line in result.banner)


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, "sdpa"),
        ({"flash_attn_implementation": "eager"}, "eager"),  # naming one asks for it
        ({"flash_attn_implementation": "eager", "use_flash_attn": False}, "sdpa"),
        ({"attn_implementation": "eager", "flash_attn_implementation": "eager"}, "eager"),
    ],
)
def test_attention_choice(values, expected):
    assert resolve_attention(make_config(**values)) == expected


@pytest.mark.parametrize(
    "values, message",
    [
        ({"use_flash_attn": True}, "flash_attention_2 needs CUDA and the flash_attn package"),
        ({"flash_attn_implementation": "flash_attention_3"}, "needs CUDA and the flash_attn_interface package"),
        ({"flash_attn_implementation": "kernels-community/flash-attn"}, "never downloads"),
        ({"attn_implementation": "sdpa", "flash_attn_implementation": "eager"}, "conflicts with --attn_implementation"),
    ],
)
def test_attention_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        resolve_attention(make_config(**values))


def _hub_cache(root, repo_id, files_from):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(files_from, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_cache_dir_resolves_a_hub_id_offline(tiny_llama, twitter_data, tmp_path):
    from .helpers import losses

    cache = _hub_cache(tmp_path / "hf-cache", "acme/tiny-llama", tiny_llama)
    out = tmp_path / "out"
    args = train_args("acme/tiny-llama", twitter_data, out, "--cache_dir", cache, steps=2, batch=4)
    result = run_training([str(a) for a in args])
    assert [s for s, _ in losses(out)] == [1, 2]
    assert result.trainer.model.config.vocab_size > 0


def test_cache_dir_misses_are_clear(tiny_llama, twitter_data, tmp_path, capsys):
    cache = _hub_cache(tmp_path / "hf-cache", "acme/tiny-llama", tiny_llama)
    code = main(
        ["train"] + [str(a) for a in train_args("acme/other", twitter_data, tmp_path / "o", "--cache_dir", cache)]
    )
    err = capsys.readouterr().err
    assert code == 1 and "acme/other" in err and f"looked in --cache_dir {cache}" in err and "Traceback" not in err
    code = main(["train"] + [str(a) for a in train_args("acme/tiny-llama", twitter_data, tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "does not exist" in err and "--cache_dir" in err


def test_dataprocessing_only_writes_shards(tiny_llama, twitter_data, tmp_path, capsys):
    from tuning_core.builtin.model_loader import load_tokenizer
    from tuning_core.data import prepare_datasets

    out = tmp_path / "out"
    args = [
        "train",
        "--model_name_or_path",
        tiny_llama,
        "--training_data_path",
        twitter_data,
        "--validation_data_path",
        twitter_data,
        "--output_dir",
        out,
        *TEXT_FIELD_ARGS,
        "--do_dataprocessing_only",
        "--num_train_dataset_shards",
        "3",
        "--num_eval_dataset_shards",
        "2",
    ]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    train_files = sorted(p.name for p in (out / "train_dataset").iterdir())
    assert train_files == ["ds_00000.parquet", "ds_00001.parquet", "ds_00002.parquet"]
    assert sorted(p.name for p in (out / "validation_dataset").iterdir()) == ["ds_00000.parquet", "ds_00001.parquet"]
    config = make_config(
        model_name_or_path=str(tiny_llama),
        training_data_path=str(twitter_data),
        dataset_text_field="output",
        response_template="\\n### Label:",
    )
    ref = prepare_datasets(config, load_tokenizer(config))
    rows = [pq.read_table(out / "train_dataset" / name).to_pydict() for name in train_files]
    assert [len(r["input_ids"]) for r in rows] == [80, 80, 80]  # contiguous, even shards of 240 examples
    assert [x for r in rows for x in r["input_ids"]] == ref.train["input_ids"]
    assert [x for r in rows for x in r["labels"]] == ref.train["labels"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--dataset_image_field", "image"],
            "--dataset_image_field image: vision-language tuning is not supported yet",
        ),
        (["--num_train_dataset_shards", "0"], "--num_train_dataset_shards must be at least 1, not 0"),
        (["--training_logs_filename", "logs/x.jsonl"], "--training_logs_filename must be a file name inside"),
        (["--trackers", "hf_resource_scanner", "--scanner_output_filename", "/"], "--scanner_output_filename must"),
    ],
)
def test_bad_values_are_one_clear_line(twitter_data, tmp_path, capsys, flags, message):
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(tmp_path / "no-model"),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(tmp_path / "o"),
            *TEXT_FIELD_ARGS,
            *flags,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_reduce_loss_sum_is_the_token_sum_of_cross_entropy(tiny_llama, twitter_data, tmp_path):
    import torch
    import torch.nn.functional as F

    out = tmp_path / "out"
    result = run_training(
        train_args(tiny_llama, twitter_data, out, "--enable_reduce_loss_sum", "true", steps=1, batch=4)
    )
    trainer = result.trainer
    assert any("summed over tokens" in line for line in result.banner)
    model = trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        got = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        labels = batch["labels"][:, 1:]
        expected = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum"
        )
        trained_tokens = int((labels != -100).sum())
    assert trained_tokens > 4
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    with torch.no_grad():  # the ordinary loss of the same batch is the per-token mean
        trainer.reduce_loss_sum = False
        mean = trainer.compute_loss(model, dict(batch))
    torch.testing.assert_close(got / trained_tokens, mean, rtol=1e-5, atol=1e-5)


def test_reduce_loss_sum_refuses_prompt_tuning(twitter_data, tmp_path, capsys):
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(tmp_path / "m"),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(tmp_path / "o"),
            *TEXT_FIELD_ARGS,
            "--peft_method",
            "pt",
            "--enable_reduce_loss_sum",
            "true",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--enable_reduce_loss_sum does not work with --peft_method pt" in err
