"""Nothing a user feeds in may hang or eat memory without limit (issue 16.6), plus the small fixes of 16.7."""

import json
import os
import time

import pytest

from tuning_core.cli import main
from tuning_core.data import cache


def _cli(capfd, *argv):
    code = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def test_giant_jsonl_line_is_refused_quickly(tiny_llama, tmp_path, capfd):
    from tuning_core.data.readers import MAX_JSONL_LINE_BYTES

    data = tmp_path / "big.jsonl"
    with open(data, "w") as f:
        f.write(json.dumps({"output": "fine"}) + "\n")
        f.write('{"output": "' + "x" * (MAX_JSONL_LINE_BYTES + 10) + '"}\n')
    start = time.perf_counter()
    code, _, err = _cli(
        capfd,
        "data",
        "preview",
        "--model_name_or_path",
        tiny_llama,
        "--training_data_path",
        data,
        "--dataset_text_field",
        "output",
    )
    assert code == 1 and "line 2 is longer than 16 MiB" in err and "Traceback" not in err
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "template,expected",
    [
        ("{{ 'a' * 50000000 }}{{output}}", "builds a value of 50,000,000 items"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{output}}",
            "loops more than 100,000 times",
        ),
        ("{% for i in range(3000) %}{{ 'b' * 3000 }}{% endfor %}{{output}}", "rendered text is longer than"),
        ("{{ 9 ** 999999999 }}{{output}}", "power above 64"),
    ],
)
def test_formatter_template_caps(template, expected, tiny_llama, twitter_data, tmp_path, capfd):
    start = time.perf_counter()
    code, _, err = _cli(
        capfd,
        "data",
        "preview",
        "--model_name_or_path",
        tiny_llama,
        "--training_data_path",
        twitter_data,
        "--data_formatter_template",
        template,
        "--response_template",
        "x",
        "--skip_missing_response_template",
    )
    assert code == 1 and expected in err and err.count("\n") == 1, err[-2000:]
    assert time.perf_counter() - start < 30


def test_log_format_width_is_capped(tmp_path):
    from tuning_core.controller import builtin_components, load_plan
    from tuning_core.errors import ConfigError

    spec = tmp_path / "c.yaml"
    spec.write_text(
        "controller_metrics:\n  - name: state\n    class: TrainingState\n"
        "operations:\n  - name: say\n    class: LogControl\n"
        "    arguments: {log_format: '{state.global_step:>200000000}'}\n"
        "controllers:\n  - name: c\n    triggers: [on_log]\n    rule: 'True'\n"
        "    operations: [say.should_log]\n"
    )
    with pytest.raises(ConfigError, match="width or precision over 1000"):
        load_plan(str(spec), builtin_components())


def test_log_format_nested_width_is_capped_when_formatting():
    from tuning_core.controller.operations import _SafeFormatter

    with pytest.raises(ValueError, match="over 1000"):
        _SafeFormatter().vformat("{x:>{w}}", (), {"x": 1, "w": 200000000})


def _entry(root, name, size, age):
    entry = root / name
    entry.mkdir(parents=True)
    (entry / "data.arrow").write_bytes(b"\0" * size)
    past = time.time() - age
    os.utime(entry, (past, past))
    return entry


def test_data_cache_evicts_least_recently_used_and_stale_temp(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNING_CORE_CACHE", str(tmp_path))
    root = cache.cache_root()
    old, mid, new = (_entry(root, n, 400_000, age) for n, age in (("old", 300), ("mid", 200), ("new", 100)))
    stale = _entry(root, ".tmp-dead", 10, 2 * cache.STALE_TMP_SECONDS)
    busy = _entry(root, ".tmp-busy", 10, 5)  # another run storing right now
    removed = cache.evict(root, limit=900_000, keep=new)
    assert removed == [old] and mid.exists() and new.exists()
    assert cache.remove_stale_temp(root) == [stale] and busy.exists()


def test_data_cache_store_respects_the_cap_and_load_refreshes(tmp_path, monkeypatch):
    import pyarrow as pa

    monkeypatch.setenv("TUNING_CORE_CACHE", str(tmp_path))
    monkeypatch.setenv("TUNING_CORE_CACHE_MAX_GB", "0.0000015")  # 1,500 bytes: about one entry
    table = pa.table({"input_ids": [[1, 2, 3]] * 20, "labels": [[1, 2, 3]] * 20})
    stats = {"num_examples": 20}
    assert cache.store("a" * 32, table, stats) is not None
    time.sleep(0.01)
    assert cache.store("b" * 32, table, stats) is not None
    assert [p.name for p in cache.entries()] == ["b" * 32]  # a was least recently used and over the cap
    assert cache.load("b" * 32)[1] == stats


def test_data_cache_clear_command(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TUNING_CORE_CACHE", str(tmp_path))
    root = cache.cache_root()
    _entry(root, "x", 1000, 1)
    _entry(root, ".tmp-y", 10, 1)
    code, out, _ = _cli(capfd, "data", "cache")
    assert code == 0 and "1 cached datasets" in out
    code, out, _ = _cli(capfd, "data", "cache", "--clear")
    assert code == 0 and "removed 1 cached datasets" in out
    assert list(root.iterdir()) == []


def test_infer_text_reads_backslash_n_as_a_newline(tiny_llama, tmp_path, capfd):
    out = tmp_path / "r.json"
    code, _, err = _cli(
        capfd, "infer", "--model", tiny_llama, "--text", "a\\nb", "--max_new_tokens", "1", "--out_file", out
    )
    assert code == 0, err[-2000:]
    assert json.loads(out.read_text())[0]["input"] == "a\nb"


def test_demo_removes_its_temporary_folder(tmp_path, monkeypatch, capfd):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    from tuning_core.demo import run_demo

    run_demo(["--epochs", "0.4"])  # 12 steps: one logged loss (every 10 steps)
    assert "temporary folder is removed" in capfd.readouterr().out
    assert not list(tmp_path.glob("tuning-core-demo-*"))
