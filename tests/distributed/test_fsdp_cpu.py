"""FSDP2 with two real processes on CPU: `accelerate launch --config_file fixtures/accelerate_fsdp_defaults.yaml`.

accelerate applies its FSDP plugin only on GPUs; on CPU it silently falls back to
DDP (tuning-core reports that; see test_launch.py). torch's FSDP2 runs on CPU over
gloo, so these runs go through tests/distributed/fsdp_on_cpu.py, which lets
accelerate take its GPU code path on CPU and changes nothing else: the shipped
config file, accelerate's launcher, the Trainer's FSDP preparation, checkpointing
and tuning-core's final save are the ones a GPU run uses. Tests that need CUDA
(mixed precision, more than one GPU) live in test_fsdp_gpu.py.
"""

import shutil

import pytest

from .helpers import (
    FSDP_DEFAULTS,
    HERE,
    accelerate_launch,
    describe,
    free_port,
    jsonl,
    load_weights,
    logged_losses,
    max_difference,
    moved,
    probes,
    run_launcher,
    train_args,
    with_flag,
)

pytestmark = pytest.mark.slow
TOL = 1e-5
WORKER = HERE / "fsdp_on_cpu.py"
LORA = [
    "--peft_method",
    "lora",
    "--r",
    "4",
    "--lora_alpha",
    "8",
    "--lora_dropout",
    "0",
    "--target_modules",
    "q_proj",
    "v_proj",
]


def fsdp_launch(*launch_options):
    return accelerate_launch(
        "--config_file",
        FSDP_DEFAULTS,
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        *launch_options,
        WORKER,
    )


@pytest.fixture(scope="module")
def fsdp_run(tiny_llama, twitter_data, tmp_path_factory, launch_env):
    base = tmp_path_factory.mktemp("fsdp")
    out, probe_dir = base / "out", base / "probe"
    args = train_args(tiny_llama, twitter_data, out, "--peft_method", "None", "--save_model_dir", out / "final")
    done = run_launcher([*fsdp_launch(), *args], launch_env(probe_dir))
    assert done.returncode == 0, describe(done)
    return out, probe_dir, args, done


@pytest.fixture(scope="module")
def fsdp_resumed(fsdp_run, tmp_path_factory, launch_env):
    out, _, args, _ = fsdp_run
    base = tmp_path_factory.mktemp("fsdp_resumed")
    resumed = base / "out"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "final")
    args = with_flag(moved(args, out, resumed), "--max_steps", "6")
    done = run_launcher([*fsdp_launch(), *args], launch_env(base / "probe"))
    assert done.returncode == 0, describe(done)
    return resumed, done


@pytest.fixture(scope="module")
def reference_lora(tiny_llama, twitter_data, tmp_path_factory):
    from tuning_core.pipeline import run_training
    from tuning_core.testing.plugins import only_plugins

    out = tmp_path_factory.mktemp("reference_lora")
    with only_plugins():
        result = run_training(
            train_args(
                tiny_llama,
                twitter_data,
                out,
                *LORA,
                "--save_model_dir",
                out / "final",
                "--use_cpu",
                "true",
                steps=3,
                per_device=4,
                save_steps=3,
            )
        )
    return out, result


def test_parameters_are_sharded_across_the_two_ranks(fsdp_run):
    _, probe_dir, _, done = fsdp_run
    ranks = probes(probe_dir)
    assert len(ranks) == 2 and all(r["distributed_type"] == "FSDP" and r["sharded"] for r in ranks)
    total = ranks[0]["total_numel"]
    assert all(r["local_numel"] < 0.6 * total for r in ranks)  # each rank holds about half
    assert sum(r["local_numel"] for r in ranks) == total
    assert (
        "distributed: FSDP2 over 2 processes (gloo), reshard_after_forward=True, checkpoints FULL_STATE_DICT"
        in done.stdout
    )


def test_full_model_saved_and_equal_to_single_process(fsdp_run, reference_full, tiny_llama):
    from transformers import AutoModelForCausalLM

    out, _, _, _ = fsdp_run
    final = load_weights(out / "final")
    assert max_difference(final, load_weights(reference_full / "checkpoint-4")) < TOL
    assert max_difference(load_weights(out / "checkpoint-2"), load_weights(reference_full / "checkpoint-2")) < TOL
    model, info = AutoModelForCausalLM.from_pretrained(out / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    # the pad token is an existing special token: no row added, nothing for sharding to lose
    assert model.get_input_embeddings().weight.shape[0] == 512


def test_only_rank_zero_logs_and_every_rank_saves_its_part(fsdp_run):
    out, _, _, done = fsdp_run
    assert [r["data"]["step"] for r in jsonl(out / "training_logs.jsonl")] == [1, 2, 3, 4]
    assert done.stdout.count("***** tuning-core *****") == 1
    for step in (2, 4):
        names = {p.name for p in (out / f"checkpoint-{step}").iterdir()}
        assert {
            "pytorch_model_fsdp.bin",
            "optimizer.bin",
            "rng_state_0.pth",
            "rng_state_1.pth",
            "checkpoint_complete.json",
        } <= names


def test_resume_from_an_fsdp_checkpoint(fsdp_resumed, reference_full):
    out, done = fsdp_resumed
    assert f"resuming from {out / 'checkpoint-4'}" in done.stdout
    assert [s for s, _ in logged_losses(out)] == [1, 2, 3, 4, 5, 6]
    assert max_difference(load_weights(out / "final"), load_weights(reference_full / "checkpoint-6")) < TOL


def test_lora_with_sharded_checkpoints_saves_a_full_adapter(
    tiny_llama, twitter_data, tmp_path, launch_env, reference_lora
):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    args = train_args(tiny_llama, twitter_data, out, *LORA, "--save_model_dir", out / "final", steps=3, save_steps=3)
    done = run_launcher(
        [*fsdp_launch("--fsdp_state_dict_type", "SHARDED_STATE_DICT"), *args], launch_env(tmp_path / "probe")
    )
    assert done.returncode == 0, describe(done)
    assert "checkpoints SHARDED_STATE_DICT" in done.stdout
    shards = {p.name for p in (out / "checkpoint-3" / "pytorch_model_fsdp_0").iterdir()}
    assert {"__0_0.distcp", "__1_0.distcp"} <= shards  # each rank wrote its own part of the checkpoint

    final = out / "final"
    ours = load_file(str(final / "adapter_model.safetensors"))
    ref_dir, ref_result = reference_lora
    theirs = load_file(str(ref_dir / "final" / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert {k.split(".")[-3] + "." + k.split(".")[-2] for k in ours if "lora_" in k} == {
        "q_proj.lora_A",
        "q_proj.lora_B",
        "v_proj.lora_A",
        "v_proj.lora_B",
    }
    assert max_difference(ours, theirs) < TOL
    assert max(t.abs().max().item() for k, t in ours.items() if "lora_B" in k) > 100 * TOL  # B left zero init

    tok = AutoTokenizer.from_pretrained(final)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    base.resize_token_embeddings(len(tok))
    model = PeftModel.from_pretrained(base, final).eval()
    ids = tok("### Text: my flight was late\n\n### Label:", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref_result.trainer.model.eval()(ids).logits, rtol=1e-4, atol=1e-4)
