"""examples/kubernetes/pytorchjob.yaml: its tuning config parses as `tuning-core train` would read it in the pod,
its FSDP file passes the accelerate check, and the job wiring (Kueue label, mounts, process counts) holds together.
"""

import json
import re
import shlex

import pytest
import yaml

from tuning_core.distributed import accelerate_launch_processes
from tuning_core.fsdp_check import check_accelerate_config

from .helpers import FSDP_DEFAULTS, ROOT

EXAMPLE = ROOT / "examples" / "kubernetes" / "pytorchjob.yaml"


@pytest.fixture(scope="module")
def docs():
    found = {d["kind"]: d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d}
    assert set(found) == {"ConfigMap", "PyTorchJob"}
    return found


def containers(job):
    specs = job["spec"]["pytorchReplicaSpecs"]
    return {role: spec["template"]["spec"]["containers"][0] for role, spec in specs.items()}


def mounted_file(role_spec, container, path):
    """The ConfigMap key that ``path`` is inside the container, via its volume mounts."""
    volumes = {v["name"]: v for v in role_spec["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix) and "configMap" in volumes[mount["name"]]:
            return volumes[mount["name"]]["configMap"]["name"], path[len(prefix) :]
    return None


def test_tuning_config_is_what_tuning_core_train_reads(docs, tmp_path, monkeypatch):
    from tuning_core.config import load_train_config

    cfg = json.loads(docs["ConfigMap"]["data"]["config.json"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    monkeypatch.setenv("SFT_TRAINER_CONFIG_JSON_PATH", str(path))
    config = load_train_config([])  # no flags: everything comes from the file, as in the pod
    assert config.model_name_or_path == cfg["model_name_or_path"]
    assert config.peft_method == "lora" and config.r == cfg["r"]
    assert config.training_args.output_dir == cfg["output_dir"]
    assert config.training_args.per_device_train_batch_size == cfg["per_device_train_batch_size"]


def test_fsdp_file_matches_the_shipped_defaults_and_validates(docs, tmp_path):
    text = docs["ConfigMap"]["data"]["accelerate_fsdp.yaml"]
    assert yaml.safe_load(text)["fsdp_config"] == yaml.safe_load(FSDP_DEFAULTS.read_text())["fsdp_config"]
    path = tmp_path / "accelerate_fsdp.yaml"
    path.write_text(text)
    settings = check_accelerate_config(path, num_processes=4)
    assert settings.full_shard and settings.state_dict_type == "FULL_STATE_DICT"


def test_job_is_queued_by_kueue_and_reads_the_config_map(docs):
    job, cm = docs["PyTorchJob"], docs["ConfigMap"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    for role, container in containers(job).items():
        spec = job["spec"]["pytorchReplicaSpecs"][role]
        assert container["name"] == "pytorch" and spec["restartPolicy"] == "Never"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert mounted_file(spec, container, env["SFT_TRAINER_CONFIG_JSON_PATH"]) == (
            cm["metadata"]["name"],
            "config.json",
        )
        command = " ".join(container["command"] + container["args"])
        config_file = re.search(r"--config_file (\S+)", command).group(1)
        assert mounted_file(spec, container, config_file) == (cm["metadata"]["name"], "accelerate_fsdp.yaml")
        assert command.rstrip().endswith("-m tuning_core.sft_trainer")  # no flags: the JSON config rules


def test_process_count_matches_gpus_and_nodes(docs):
    job = docs["PyTorchJob"]
    per_node = int(job["spec"]["nprocPerNode"])
    nodes = sum(spec["replicas"] for spec in job["spec"]["pytorchReplicaSpecs"].values())
    for container in containers(job).values():
        assert container["resources"]["limits"]["nvidia.com/gpu"] == per_node
        script = container["args"][0]
        # What the pod's shell hands accelerate, with the operator's environment filled in.
        env = {
            "PET_NNODES": nodes,
            "PET_NPROC_PER_NODE": per_node,
            "PET_NODE_RANK": 0,
            "MASTER_ADDR": "master-0",
            "MASTER_PORT": 23456,
        }
        expanded = re.sub(
            r"\$\(\((\w+) \* (\w+)\)\)", lambda m, env=env: str(env[m.group(1)] * env[m.group(2)]), script
        )
        expanded = re.sub(r"\$\{(\w+)\}", lambda m, env=env: str(env[m.group(1)]), expanded)
        argv = shlex.split(expanded)[1:]  # drop `exec`
        assert accelerate_launch_processes(argv) == nodes * per_node
        assert argv[argv.index("--num_machines") + 1] == str(nodes)
