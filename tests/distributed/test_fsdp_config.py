"""fixtures/accelerate_fsdp_defaults.yaml loads through accelerate and says what the docs promise; bad files fail."""

import pytest
import yaml

from tuning_core.errors import ConfigError
from tuning_core.fsdp_check import check_accelerate_config, main

from .helpers import FSDP_DEFAULTS


def variant(tmp_path, change=None, fsdp=None, drop=()):
    """A copy of the shipped defaults with top-level ``change``, fsdp_config ``fsdp`` and ``drop`` removed."""
    data = yaml.safe_load(FSDP_DEFAULTS.read_text())
    data.update(change or {})
    data["fsdp_config"].update(fsdp or {})
    for key in drop:
        data["fsdp_config"].pop(key)
    path = tmp_path / "accelerate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_defaults_full_shard_layer_wrap_full_state_dict_ram_efficient():
    s = check_accelerate_config(FSDP_DEFAULTS)
    assert s.fsdp_version == 2 and s.full_shard and s.sharding == "reshard_after_forward=True"
    assert s.auto_wrap_policy == "TRANSFORMER_BASED_WRAP"
    assert s.state_dict_type == "FULL_STATE_DICT"
    assert s.cpu_ram_efficient_loading and not s.offload_params
    assert s.mixed_precision == "no" and s.notes == []


def test_shipped_defaults_launch_one_process_unless_told():
    data = yaml.safe_load(FSDP_DEFAULTS.read_text())
    assert data["num_processes"] == 1 and data["num_machines"] == 1 and data["distributed_type"] == "FSDP"


def test_command_line_check(capsys):
    assert main([str(FSDP_DEFAULTS)]) == 0
    assert (
        "FSDP2, reshard_after_forward=True, wrap TRANSFORMER_BASED_WRAP, state dict FULL_STATE_DICT"
        in capsys.readouterr().out
    )


def test_check_fsdp_is_a_tuning_core_command(capsys):
    from tuning_core.cli import main as tuning_core

    assert tuning_core(["check-fsdp", str(FSDP_DEFAULTS), "4"]) == 0
    out = capsys.readouterr().out
    assert "FSDP2" in out and "state dict FULL_STATE_DICT" in out


@pytest.mark.parametrize(
    "change, fsdp, message",
    [
        (
            {},
            {"fsdp_state_dict_typ": "FULL_STATE_DICT"},
            "unknown key 'fsdp_state_dict_typ'; did you mean 'fsdp_state_dict_type'",
        ),
        ({"num_process": 2}, {}, "unknown accelerate setting 'num_process'; did you mean 'num_processes'"),
        ({"distributed_type": "MULTI_GPU"}, {}, "needs distributed_type: FSDP"),
        ({}, {"fsdp_sync_module_states": False}, "fsdp_sync_module_states"),
        ({}, {"fsdp_state_dict_type": "LOCAL_STATE_DICT"}, "FSDP2 does not support LOCAL_STATE_DICT"),
        ({}, {"fsdp_auto_wrap_policy": "LAYER_WRAP"}, "Invalid auto wrap policy"),
        ({}, {"fsdp_reshard_after_forward": "FULL_SHARD"}, "rejects it"),
    ],
)
def test_bad_files_are_rejected_with_the_reason(tmp_path, change, fsdp, message):
    with pytest.raises(ConfigError, match="accelerate.yaml") as info:
        check_accelerate_config(variant(tmp_path, change, fsdp))
    assert message in str(info.value)


def test_not_a_mapping_or_missing(tmp_path):
    (tmp_path / "list.yaml").write_text("- FSDP\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        check_accelerate_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="not found"):
        check_accelerate_config(tmp_path / "absent.yaml")
    assert main([str(tmp_path / "absent.yaml")]) == 2


def test_sharded_checkpoints_and_fsdp1_settings_get_notes(tmp_path):
    s = check_accelerate_config(
        variant(tmp_path, fsdp={"fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_backward_prefetch": "BACKWARD_PRE"})
    )
    assert s.state_dict_type == "SHARDED_STATE_DICT"
    assert any("gathers full weights for save_model_dir" in n for n in s.notes)
    assert any("fsdp_backward_prefetch is an FSDP1 setting that FSDP2 ignores" in n for n in s.notes)


def test_fms_hf_tuning_style_fsdp1_file_still_validates(tmp_path):
    """fms-hf-tuning's own defaults: FSDP1, numeric sharding strategy, backward prefetch."""
    path = variant(
        tmp_path,
        fsdp={
            "fsdp_version": 1,
            "fsdp_sharding_strategy": 1,
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
        },
        drop=("fsdp_reshard_after_forward",),
    )
    s = check_accelerate_config(path)
    assert s.fsdp_version == 1 and s.sharding == "FULL_SHARD" and s.full_shard and s.notes == []


def test_shard_grad_op_is_reported_as_not_a_full_shard(tmp_path):
    s = check_accelerate_config(variant(tmp_path, fsdp={"fsdp_reshard_after_forward": False}))
    assert not s.full_shard and any("not a full shard" in n for n in s.notes)
