"""FSDP on real GPUs, launched exactly as users do: `accelerate launch --config_file fixtures/...`, no CPU shim.

Needs two CUDA devices; skipped otherwise (the same paths run on CPU in test_fsdp_cpu.py).
"""

import pytest

from .helpers import (
    FSDP_DEFAULTS,
    accelerate_launch,
    describe,
    free_port,
    jsonl,
    load_weights,
    max_difference,
    run_launcher,
    train_args,
)

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"),
]


def test_fsdp_on_two_gpus_matches_one_gpu(tiny_llama, twitter_data, tmp_path, launch_env, reference_full):
    out = tmp_path / "out"
    args = train_args(
        tiny_llama, twitter_data, out, "--peft_method", "None", "--bf16", "false", "--save_model_dir", out / "final"
    )
    cmd = accelerate_launch(
        "--config_file",
        FSDP_DEFAULTS,
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        "-m",
        "tuning_core.sft_trainer",
        *args,
    )
    done = run_launcher(cmd, launch_env(tmp_path / "probe", gpus=True))
    assert done.returncode == 0, describe(done)
    assert "distributed: FSDP2 over 2 processes (nccl)" in done.stdout
    assert [r["data"]["step"] for r in jsonl(out / "training_logs.jsonl")] == [1, 2, 3, 4]
    # reference_full ran on this process's GPU (or CPU): float32 on both, so only summation order differs.
    assert max_difference(load_weights(out / "final"), load_weights(reference_full / "checkpoint-4")) < 1e-4


def test_lora_bf16_on_two_gpus_saves_a_loadable_adapter(tiny_llama, twitter_data, tmp_path, launch_env):
    from peft import PeftConfig

    out = tmp_path / "out"
    args = train_args(
        tiny_llama,
        twitter_data,
        out,
        "--peft_method",
        "lora",
        "--r",
        "4",
        "--bf16",
        "true",
        "--torch_dtype",
        "bfloat16",
        "--save_model_dir",
        out / "final",
    )
    cmd = accelerate_launch(
        "--config_file",
        FSDP_DEFAULTS,
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        "--fsdp_state_dict_type",
        "SHARDED_STATE_DICT",
        "-m",
        "tuning_core.sft_trainer",
        *args,
    )
    done = run_launcher(cmd, launch_env(tmp_path / "probe", gpus=True))
    assert done.returncode == 0, describe(done)
    assert PeftConfig.from_pretrained(out / "final").r == 4
    assert (out / "final" / "adapter_model.safetensors").is_file()
