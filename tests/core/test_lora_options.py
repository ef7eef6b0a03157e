"""Every peft LoraConfig field as a flag: built from peft, cached per version, checked early, trained end to end."""

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import torch

from tuning_core.config import load_train_config
from tuning_core.config.lora_fields import build_options_class, describe, field_table, given, lora_options_class
from tuning_core.errors import ConfigError
from tuning_core.pipeline import run_training
from tuning_core.plugins import get_plugin_manager

from .helpers import train_args


def _config(tiny_llama, twitter_data, tmp_path, *extra, config_file=None):
    argv = train_args(tiny_llama, twitter_data, tmp_path, "--peft_method", "lora", *extra)
    if config_file is not None:
        path = tmp_path / "cfg.json"
        path.write_text(json.dumps(config_file))
        argv += ["--config", str(path)]
    return load_train_config([str(a) for a in argv])


def _validate(config):
    get_plugin_manager().hook.tuning_core_validate_config(config=config)


# -- the flag table -------------------------------------------------------------------------------


def test_every_installed_lora_field_is_a_flag():
    from peft import LoraConfig

    cls = lora_options_class()
    ours = {f.name for f in dataclasses.fields(cls)} | {"r", "lora_alpha", "lora_dropout", "target_modules", "bias"}
    assert {f.name for f in dataclasses.fields(LoraConfig) if f.init} <= ours


def test_a_new_peft_field_becomes_a_flag_without_code_changes():
    from peft import LoraConfig

    @dataclass
    class FutureLoraConfig(LoraConfig):
        use_new_trick: bool = field(default=False, metadata={"help": "A trick from a later peft."})
        trick_pattern: dict | None = field(default=None, metadata={"help": "Per-module trick."})

    rows = {r["name"]: r for r in describe(FutureLoraConfig)}
    assert rows["use_new_trick"]["kind"] == "bool" and rows["trick_pattern"]["kind"] == "json"
    cls = build_options_class(list(rows.values()))
    from tuning_core.config.fields import specs_for

    specs = {s.name: s for s in specs_for(cls)}
    assert specs["trick_pattern"].convert('{"q_proj": 2}', "--trick_pattern") == {"q_proj": 2}
    assert specs["use_new_trick"].convert("true", "--use_new_trick") is True


def test_cold_cache_builds_the_table_without_importing_peft_in_the_cli(tmp_path):
    """A peft version without a shipped table: described once in a subprocess, then cached."""
    env = {**os.environ, "TUNING_CORE_CACHE": str(tmp_path)}
    code = (
        "import sys, pathlib; from tuning_core.config import lora_fields; "
        f"lora_fields.SHIPPED = pathlib.Path({str(tmp_path / 'none')!r}); "
        "from tuning_core.cli import main; rc = main(['plugins']); "
        "print('HEAVY', [m for m in ('torch', 'peft') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout and "--use_dora" in proc.stdout
    from importlib.metadata import version

    cached = json.loads((tmp_path / "fields" / f"peft-{version('peft')}-lora-fields.json").read_text())
    assert cached["peft"] == version("peft") and any(r["name"] == "use_dora" for r in cached["fields"])


def test_shipped_table_matches_the_installed_peft():
    from tuning_core.config.lora_fields import SHIPPED, peft_version

    shipped = SHIPPED / f"peft-{peft_version()}-lora-fields.json"
    if shipped.is_file():  # else the table is built from peft at run time (tested above)
        assert json.loads(shipped.read_text())["fields"] == describe()
    assert field_table() == describe()


def test_cached_table_is_read_back(tmp_path, monkeypatch):
    from tuning_core.config import lora_fields

    monkeypatch.setattr(lora_fields, "SHIPPED", tmp_path / "none")
    monkeypatch.setenv("TUNING_CORE_CACHE", str(tmp_path))
    first = field_table()
    path = next((tmp_path / "fields").glob("peft-*-lora-fields.json"))
    data = json.loads(path.read_text())
    data["fields"][0]["help"] = "from the cache"
    path.write_text(json.dumps(data))
    assert field_table()[0]["help"] == "from the cache" and len(field_table()) == len(first)


# -- flag and config-file forms -------------------------------------------------------------------


def test_cli_and_json_forms(tiny_llama, twitter_data, tmp_path):
    config = _config(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--rank_pattern",
        '{"q_proj": 4}',
        "--use_dora",
        "--trainable_token_indices",
        "3",
        "5",
        "--init_lora_weights",
        "pissa_niter_4",
        "--layers_to_transform",
        "1",
        "--modules_to_save",
        "lm_head",
    )
    values = given(config)
    assert values["rank_pattern"] == {"q_proj": 4} and values["use_dora"] is True
    assert values["trainable_token_indices"] == [3, 5] and values["init_lora_weights"] == "pissa_niter_4"
    assert values["layers_to_transform"] == [1] and values["modules_to_save"] == ["lm_head"]
    assert "use_rslora" not in values  # unset: peft's default
    config = _config(
        tiny_llama,
        twitter_data,
        tmp_path,
        config_file={
            "alpha_pattern": {"v_proj": 4},
            "exclude_modules": ".*layers.0.*",
            "init_lora_weights": False,
            "trainable_token_indices": {"embed_tokens": [1, 2]},
            "layers_pattern": "layers",
            "layers_to_transform": 0,
        },
    )
    values = given(config)
    assert values["alpha_pattern"] == {"v_proj": 4} and values["init_lora_weights"] is False
    assert values["exclude_modules"] == ".*layers.0.*"  # a string stays one regular expression, as in peft
    assert values["trainable_token_indices"] == {"embed_tokens": [1, 2]} and values["layers_to_transform"] == [0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rank_pattern", "{q_proj: 4"], "--rank_pattern: invalid value .* expected JSON"),
        (["--init_lora_weights", "magic"], "expected one of true, false, gaussian"),
        (["--trainable_token_indices", "x"], "expected token ids"),
    ],
)
def test_bad_values_name_the_flag(tiny_llama, twitter_data, tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        _config(tiny_llama, twitter_data, tmp_path, *extra)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--init_lora_weights", "eva"], "eva is not supported: it needs peft's initialize_lora_eva_weights"),
        (["--init_lora_weights", "corda"], "corda is not supported"),
        (["--inference_mode", "true"], "nothing to train"),
        (["--task_type", "SEQ_CLS"], "only CAUSAL_LM"),
        (["--peft_type", "IA3"], "only LORA"),
        (["--megatron_config", "{}"], None),  # empty: nothing asked
        (["--megatron_config", '{"tensor_model_parallel_size": 2}'], "megatron_config is not supported"),
        (["--monteclora_config", '{"num_samples": 2}'], "monteclora_config is not supported"),
        (["--use_qalora"], "use_qalora is not supported"),
        (["--use_dora", "--lora_bias"], "invalid LoRA options: .*lora_bias=True is not supported for DoRA"),
        (["--layers_pattern", "layers"], "invalid LoRA options: When `layers_pattern` is specified"),
        (["--alora_invocation_string", "### Label:"], "makes an Activated LoRA: use --peft_method alora"),
    ],
)
def test_values_tuning_core_cannot_honour_fail_before_loading(tiny_llama, twitter_data, tmp_path, extra, message):
    config = _config(tiny_llama, twitter_data, tmp_path, *extra)
    if message is None:
        _validate(config)
        return
    with pytest.raises(ConfigError, match=message):
        _validate(config)


def test_internal_fields_are_accepted_as_fms_hf_tuning_does(tiny_llama, twitter_data, tmp_path):
    from tuning_core.builtin.lora_options import options

    config = _config(
        tiny_llama,
        twitter_data,
        tmp_path,
        config_file={
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "auto_mapping": None,
            "revision": "main",
            "base_model_name_or_path": "somewhere/else",
            "peft_version": "0.1",
            "inference_mode": False,
            "megatron_core": "megatron.core",
            "runtime_config": {"ephemeral_gpu_offload": False},
        },
    )
    _validate(config)
    kwargs = options(config)
    assert "base_model_name_or_path" not in kwargs and "peft_version" not in kwargs and kwargs["revision"] == "main"


def test_alora_needs_its_invocation(tiny_llama, twitter_data, tmp_path):
    config = _config(tiny_llama, twitter_data, tmp_path, "--peft_method", "alora")
    with pytest.raises(ConfigError, match="needs --alora_invocation_string"):
        _validate(config)


# -- end to end: trained, saved, loaded with plain peft -------------------------------------------


def _train(tiny_llama, twitter_data, out, *extra, target=("q_proj", "v_proj")):
    result = run_training(
        train_args(
            tiny_llama,
            twitter_data,
            out,
            "--peft_method",
            "lora",
            "--r",
            "4",
            "--lora_alpha",
            "8",
            "--target_modules",
            *target,
            *extra,
            "--save_model_dir",
            out / "final",
            steps=3,
        )
    )
    return out / "final", result


def _plain_peft(final, tiny_llama, trained, tol=1e-4):
    """Load the adapter with nothing but transformers + peft and check it reproduces the trained model."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    assert base.get_input_embeddings().weight.shape[0] == len(tok)  # no resize needed
    model = PeftModel.from_pretrained(base, final).eval()
    ids = tok("### Text: my flight was late\n\n### Label:", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, trained.eval()(ids).logits, rtol=tol, atol=tol)
    return json.loads((final / "adapter_config.json").read_text()), load_file(final / "adapter_model.safetensors")


def test_plain_lora_adapter_holds_only_lora_weights(tiny_llama, twitter_data, tmp_path):
    final, result = _train(tiny_llama, twitter_data, tmp_path)
    _, weights = _plain_peft(final, tiny_llama, result.trainer.model)
    assert weights and all("lora_A" in k or "lora_B" in k for k in weights)
    from tuning_core.export import vllm_layout_problems

    assert vllm_layout_problems(final, {"q_proj", "k_proj", "v_proj", "o_proj"}) == []  # serves on vLLM as is


def test_dora_with_rank_alpha_patterns_and_layer_selection(tiny_llama, twitter_data, tmp_path):
    final, result = _train(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--use_dora",
        "--rank_pattern",
        '{"v_proj": 2}',
        "--alpha_pattern",
        '{"v_proj": 16}',
        "--layers_to_transform",
        "1",
        "--layers_pattern",
        "layers",
    )
    cfg, weights = _plain_peft(final, tiny_llama, result.trainer.model)
    assert cfg["use_dora"] is True and cfg["rank_pattern"] == {"v_proj": 2} and cfg["layers_to_transform"] == [1]
    assert any("lora_magnitude_vector" in k for k in weights)
    from tuning_core.export import vllm_layout_problems

    assert "DoRA: vLLM does not load DoRA adapters" in vllm_layout_problems(final, {"q_proj", "v_proj"})
    assert all(".layers.1." in k for k in weights)  # layer 0 untouched
    v_a = next(w for k, w in weights.items() if "v_proj.lora_A" in k)
    q_a = next(w for k, w in weights.items() if "q_proj.lora_A" in k)
    assert v_a.shape[0] == 2 and q_a.shape[0] == 4
    assert result.trainer.model.base_model.model.model.layers[1].self_attn.v_proj.scaling["default"] == 8.0


def test_rslora_lora_bias_exclude_modules_and_modules_to_save(tiny_llama, twitter_data, tmp_path):
    final, result = _train(
        tiny_llama,
        twitter_data,
        tmp_path,
        "--use_rslora",
        "--lora_bias",
        "--exclude_modules",
        "model.layers.0.self_attn.q_proj",
        "--modules_to_save",
        "lm_head",
        target=("q_proj", "v_proj", "o_proj"),
    )
    cfg, weights = _plain_peft(final, tiny_llama, result.trainer.model)
    assert cfg["use_rslora"] is True and cfg["lora_bias"] is True
    assert any("lora_B" in k and k.endswith("bias") for k in weights)
    assert not any("layers.0.self_attn.q_proj" in k for k in weights)
    assert any("layers.1.self_attn.q_proj" in k for k in weights)
    assert any("lm_head" in k for k in weights)
    layer = result.trainer.model.base_model.model.model.layers[1].self_attn.q_proj
    assert layer.scaling["default"] == pytest.approx(8 / 4**0.5)  # rsLoRA: alpha / sqrt(r)


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_adapters_load_onto_the_original_base(tiny_llama, twitter_data, tmp_path, init):
    final, result = _train(tiny_llama, twitter_data, tmp_path, "--init_lora_weights", init)
    cfg, weights = _plain_peft(final, tiny_llama, result.trainer.model, tol=2e-3)
    # Converted into a plain LoRA of twice the rank that applies to the untouched base.
    assert cfg["init_lora_weights"] is True and cfg["r"] == 8
    assert next(w for k, w in weights.items() if "lora_A" in k).shape[0] == 8


def test_trainable_token_indices_with_gaussian_init(tiny_llama, twitter_data, tmp_path):
    final, result = _train(
        tiny_llama, twitter_data, tmp_path, "--trainable_token_indices", "5", "7", "--init_lora_weights", "gaussian"
    )
    cfg, weights = _plain_peft(final, tiny_llama, result.trainer.model)
    assert cfg["trainable_token_indices"] == [5, 7] and cfg["init_lora_weights"] == "gaussian"
    deltas = [w for k, w in weights.items() if "trainable_tokens" in k]
    assert deltas and deltas[0].shape[0] == 2 and deltas[0].abs().sum() > 0  # the two rows trained


def test_tied_embeddings_stay_tied_when_saved_whole(tiny_llama, twitter_data, tmp_path):
    from types import SimpleNamespace

    from tuning_core.builtin.lora_options import lora_kwargs

    config = _config(tiny_llama, twitter_data, tmp_path, "--modules_to_save", "lm_head")
    tied = SimpleNamespace(config=SimpleNamespace(tie_word_embeddings=True))
    untied = SimpleNamespace(config=SimpleNamespace(tie_word_embeddings=False))
    assert lora_kwargs(config, ["q_proj"], tied)["ensure_weight_tying"] is True  # fms-hf-tuning's rule
    assert "ensure_weight_tying" not in lora_kwargs(config, ["q_proj"], untied)
    config = _config(
        tiny_llama, twitter_data, tmp_path, "--modules_to_save", "lm_head", "--ensure_weight_tying", "false"
    )
    assert lora_kwargs(config, ["q_proj"], tied)["ensure_weight_tying"] is False  # the user's value wins
