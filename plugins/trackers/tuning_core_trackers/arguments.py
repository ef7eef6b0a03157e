"""The tracker flags, named as in fms-hf-tuning. `--trackers` itself belongs to the core."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_EXPERIMENT = "tuning-core"


@dataclass
class TrackerArguments:
    experiment: str = field(
        default=DEFAULT_EXPERIMENT,
        metadata={
            "help": "Experiment name shared by every tracker unless --aim_experiment or "
            "--mlflow_experiment overrides it."
        },
    )
    exp_metadata: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of key/value pairs recorded with the run by each tracker, "
            'e.g. \'{"gpu": "A100-80G"}\'.'
        },
    )
    run_uri_export_path: str | None = field(
        default=None,
        metadata={
            "help": "Folder where each tracker writes <name>_tracker.json naming its run (default: --output_dir)."
        },
    )
    aim_repo: str | None = field(
        default=None,
        metadata={
            "help": "Local Aim repository folder (created if missing). Default when no "
            "remote server is given: <output_dir>/aim."
        },
    )
    aim_experiment: str | None = field(
        default=None,
        metadata={"help": "Aim experiment name (default: --experiment)."},
    )
    aim_remote_server_ip: str | None = field(
        default=None,
        metadata={"help": "Host of a remote Aim server (`aim server`); needs --aim_remote_server_port."},
    )
    aim_remote_server_port: int | None = field(
        default=None,
        metadata={"help": "Port of the remote Aim server; needs --aim_remote_server_ip."},
    )
    aim_url: str | None = field(
        default=None,
        metadata={
            "help": "Aim repository as one URL, e.g. aim://host:53800 for a remote `aim server` (or a local "
            "folder); fms-hf-tuning's alternative to --aim_remote_server_ip/--aim_remote_server_port."
        },
    )
    mlflow_tracking_uri: str | None = field(
        default=None,
        metadata={
            "help": "MLflow tracking URI: sqlite:///path.db, a server http(s)://host:port, or a "
            "folder for MLflow's file store. Default: sqlite:///<output_dir>/mlflow/mlflow.db."
        },
    )
    mlflow_experiment: str | None = field(
        default=None,
        metadata={"help": "MLflow experiment name (default: --experiment)."},
    )
    clearml_project: str | None = field(
        default=None,
        metadata={"help": "ClearML project the run is recorded in (default: --experiment)."},
    )
    clearml_task: str | None = field(
        default=None,
        metadata={
            "help": "ClearML task name of the run (default: the --output_dir folder's name). Set "
            "CLEARML_OFFLINE_MODE=1 to record without a ClearML server."
        },
    )
