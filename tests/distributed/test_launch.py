"""Launch detection: a launch that asked for N processes but trains in a world of one is stopped and explained.

The unit tests feed environments and command lines as each launcher sets them;
the slow tests launch for real and check the run stops before loading a model.
"""

from types import SimpleNamespace

import pytest

from tuning_core.distributed import (
    LaunchError,
    accelerate_launch_processes,
    check_launch,
    describe_launch,
    prepare_launch,
    requested_processes,
)

from .helpers import accelerate_launch, describe, free_port, run_launcher, torchrun, train_args

TORCHRUN_ENV = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "none"}
ACCELERATE_ENV = {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO", "ACCELERATE_USE_CPU": "True"}


def args(world_size):
    return SimpleNamespace(world_size=world_size, output_dir="/runs/out")


# ---------------------------------------------------------------------------------------------- prepare_launch


def test_torchrun_without_gpu_gets_the_cpu_backend():
    env = dict(TORCHRUN_ENV)
    note = prepare_launch(env, has_accelerator=False)
    assert env["ACCELERATE_USE_CPU"] == "true" and "2 processes train on CPU over gloo" in note


@pytest.mark.parametrize(
    "env, has_gpu",
    [
        (TORCHRUN_ENV, True),  # GPUs: accelerate's own choice (NCCL)
        ({**TORCHRUN_ENV, "ACCELERATE_USE_CPU": "false"}, False),  # the user's explicit choice stands
        ({**TORCHRUN_ENV, "WORLD_SIZE": "1"}, False),  # one process
        ({"WORLD_SIZE": "2", "RANK": "0"}, False),  # not started by a launcher (no LOCAL_RANK)
        ({}, False),
    ],
)
def test_prepare_launch_leaves_other_launches_alone(env, has_gpu):
    env = dict(env)
    before = dict(env)
    assert prepare_launch(env, has_accelerator=has_gpu) is None
    assert env == before


# ---------------------------------------------------------------------------------------------- requested_processes


def test_requested_by_torchrun_accelerate_or_an_operator():
    assert requested_processes(TORCHRUN_ENV).launcher == "torchrun"
    multi = requested_processes({**TORCHRUN_ENV, **ACCELERATE_ENV, "WORLD_SIZE": "4"})
    assert (multi.processes, multi.launcher) == (4, "accelerate launch")
    pod = requested_processes({"WORLD_SIZE": "8", "RANK": "3"})
    assert (pod.processes, pod.launcher, pod.detail) == (8, "the environment", "WORLD_SIZE=8")
    assert requested_processes({}) is None


def test_accelerate_single_process_launch_is_read_from_its_command_line(tmp_path):
    parent = [
        "/usr/bin/python3",
        "/venv/bin/accelerate",
        "launch",
        "--cpu",
        "--num_processes",
        "2",
        "-m",
        "tuning_core.sft_trainer",
        "--output_dir",
        "x",
    ]
    found = requested_processes(ACCELERATE_ENV, parent_argv=parent)
    assert (found.processes, found.launcher) == (2, "accelerate launch")
    assert requested_processes({}, parent_argv=parent) is None  # not in a process accelerate started
    assert requested_processes(ACCELERATE_ENV, parent_argv=["bash", "-c", "x"]) is None


def test_accelerate_command_line_forms(tmp_path):
    config = tmp_path / "acc.yaml"
    config.write_text("distributed_type: MULTI_GPU\nnum_processes: 3\n")
    assert accelerate_launch_processes(["accelerate", "launch", "--num_processes=4", "train.py"]) == 4
    assert accelerate_launch_processes(["accelerate-launch", "--num-processes", "5", "train.py"]) == 5
    assert accelerate_launch_processes(["accelerate", "launch", "--config_file", str(config), "t.py"]) == 3
    assert (
        accelerate_launch_processes(["python", "-m", "accelerate.commands.launch", "--num_processes", "6", "t.py"]) == 6
    )
    assert accelerate_launch_processes(["python", "train.py", "--num_processes", "2"]) is None


# ---------------------------------------------------------------------------------------------- check_launch


def test_matching_world_passes():
    assert check_launch(args(2), TORCHRUN_ENV).processes == 2
    assert check_launch(args(1), {}) is None


def test_torchrun_processes_training_alone_are_stopped():
    env = {**TORCHRUN_ENV, "ACCELERATE_USE_CPU": "false"}
    with pytest.raises(LaunchError) as info:
        check_launch(args(1), env)
    text = str(info.value)
    assert "torchrun asked for 2 processes (WORLD_SIZE=2) but this process trains in a world of 1" in text
    assert "would each train their own copy" in text and "/runs/out" in text


def test_pod_started_without_a_launcher_is_told_to_use_torchrun():
    with pytest.raises(LaunchError, match="LOCAL_RANK is not set.*torchrun -m tuning_core.sft_trainer"):
        check_launch(args(1), {"WORLD_SIZE": "4", "RANK": "2"})


def test_accelerate_single_process_launcher_is_explained():
    parent = ["accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "tuning_core.sft_trainer"]
    with pytest.raises(LaunchError) as info:
        check_launch(args(1), ACCELERATE_ENV, parent_argv=parent)
    text = str(info.value)
    assert "accelerate launch asked for 2 processes" in text and "started a single process" in text
    assert "torchrun --nproc_per_node 2 -m tuning_core.sft_trainer" in text


def test_fsdp_request_that_accelerate_dropped_is_reported():
    from accelerate.utils import DistributedType

    def trainer(kind, world, fsdp=""):
        state = SimpleNamespace(num_processes=world, distributed_type=kind, backend="gloo", fsdp_plugin=None)
        return SimpleNamespace(accelerator=SimpleNamespace(state=state), args=SimpleNamespace(fsdp=fsdp))

    lines = describe_launch(trainer(DistributedType.MULTI_CPU, 2), {"ACCELERATE_USE_FSDP": "true"})
    assert lines[0] == "distributed: DDP over 2 processes (gloo)"
    assert lines[1].startswith("WARNING: FSDP was requested but this run is DDP over 2 processes")
    assert "a single process" in describe_launch(trainer(DistributedType.NO, 1, fsdp="full_shard"), {})[0]
    assert describe_launch(trainer(DistributedType.NO, 1), {}) == []


# ---------------------------------------------------------------------------------------------- real launches


@pytest.mark.slow
def test_accelerate_cpu_launch_of_two_processes_stops_before_training(tiny_llama, twitter_data, tmp_path, launch_env):
    out = tmp_path / "out"
    cmd = accelerate_launch(
        "--cpu",
        "--num_processes",
        "2",
        "--main_process_port",
        str(free_port()),
        "-m",
        "tuning_core.sft_trainer",
        *train_args(tiny_llama, twitter_data, out),
    )
    done = run_launcher(cmd, launch_env(tmp_path / "probe"), timeout=600)
    assert done.returncode != 0, describe(done)
    assert "tuning-core: error: accelerate launch asked for 2 processes" in done.stderr
    assert "started a single process" in done.stderr
    assert "exit status 2" in done.stderr  # our user-error exit code, reported by accelerate: not a crash
    assert not out.exists()  # stopped before anything was written


@pytest.mark.slow
def test_torchrun_processes_that_cannot_join_stop_before_training(tiny_llama, twitter_data, tmp_path, launch_env):
    out = tmp_path / "out"
    env = launch_env(tmp_path / "probe", ACCELERATE_USE_CPU="false")  # keeps accelerate off gloo on CPU
    done = run_launcher(
        torchrun("-m", "tuning_core.sft_trainer", *train_args(tiny_llama, twitter_data, out)), env, timeout=600
    )
    assert done.returncode != 0, describe(done)
    assert (
        done.stderr.count(
            "tuning-core: error: torchrun asked for 2 processes (WORLD_SIZE=2) but this process trains in a world of 1"
        )
        == 2
    )  # both ranks stop with a user error
    assert not out.exists()
