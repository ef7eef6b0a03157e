"""Turn the tracker flags into where each tracker records, or a ConfigError naming the flag.

Pure and import-light: used by validate_config (before anything loads) and
again when the callbacks are built.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from tuning_core.plugin_api import ConfigError
from tuning_core_trackers.arguments import DEFAULT_EXPERIMENT

AIM = "aim"
MLFLOW = "mlflow"
CLEARML = "clearml"
TRACKERS = (AIM, MLFLOW, CLEARML)
# The plugin's own extras: right whichever way the plugin itself was installed.
EXTRAS = {
    AIM: "tuning-core-trackers[aim]",
    MLFLOW: "tuning-core-trackers[mlflow]",
    CLEARML: "tuning-core-trackers[clearml]",
}
# Importable modules each tracker needs; SQL stores need two more than mlflow-skinny brings.
_LIBRARIES = {AIM: ("aim",), MLFLOW: ("mlflow",), CLEARML: ("clearml",)}
# Where ClearML finds a server (its own variables and file); without one it can only record offline.
_CLEARML_SERVER_VARS = ("CLEARML_API_HOST", "CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE")
_SQL_LIBRARIES = ("sqlalchemy", "alembic")
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class AimSettings:
    repo: str  # absolute folder, or aim://host:port for a remote server
    experiment: str
    remote: bool


@dataclass(frozen=True)
class ClearmlSettings:
    project: str
    task: str
    offline: bool  # CLEARML_OFFLINE_MODE: the session is written to ClearML's cache folder, no server


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    experiment: str
    artifact_location: str | None  # set only for the default store, to keep artifacts under output_dir
    file_store: bool


def requested(config) -> list[str]:
    """The trackers this plugin runs, in the order asked for."""
    names = getattr(config, "trackers", None) or []
    return list(dict.fromkeys(name for name in names if name in TRACKERS))


def parse_exp_metadata(raw) -> dict:
    """--exp_metadata as a dict; a config file may already hold an object."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        value = raw
    else:
        try:
            value = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f'--exp_metadata must be a JSON object such as \'{{"gpu": "A100"}}\'; could not parse {raw!r}: {exc}'
            ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"--exp_metadata must be a JSON object (key/value pairs), not {type(value).__name__}: {raw!r}"
        )
    return value


def export_dir(config, output_dir: str) -> str:
    return os.path.abspath(config.run_uri_export_path or output_dir)


def aim_settings(config, output_dir: str) -> AimSettings:
    ip, port = config.aim_remote_server_ip, config.aim_remote_server_port
    experiment = config.aim_experiment or config.experiment or DEFAULT_EXPERIMENT
    if (ip is None) != (port is None):
        missing = "--aim_remote_server_port" if port is None else "--aim_remote_server_ip"
        raise ConfigError(
            f"a remote Aim server needs both --aim_remote_server_ip and --aim_remote_server_port; {missing} is missing"
        )
    if config.aim_url:
        if ip is not None or config.aim_repo:
            raise ConfigError("give one of --aim_url, --aim_repo or --aim_remote_server_ip/--aim_remote_server_port")
        return aim_url_settings(config.aim_url, experiment)
    if ip is not None:
        if config.aim_repo:
            raise ConfigError(
                "give either --aim_repo (a local repository) or --aim_remote_server_ip/"
                "--aim_remote_server_port (a remote server), not both"
            )
        if not 0 < int(port) < 65536:
            raise ConfigError(f"--aim_remote_server_port must be a TCP port (1-65535), not {port}")
        return AimSettings(repo=f"aim://{ip}:{int(port)}", experiment=experiment, remote=True)
    # Documented default: one repository per run, next to the checkpoints.
    repo = os.path.abspath(config.aim_repo or os.path.join(output_dir, "aim"))
    if os.path.isfile(repo):
        raise ConfigError(f"--aim_repo must be a folder; {repo} is a file")
    return AimSettings(repo=repo, experiment=experiment, remote=False)


def aim_url_settings(url: str, experiment: str) -> AimSettings:
    """--aim_url: aim://host:port is a remote server; anything without a scheme is a local folder."""
    parsed = urlparse(url)
    if parsed.scheme == "aim":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise ConfigError(f"--aim_url {url!r}: expected aim://HOST:PORT for a remote Aim server")
        return AimSettings(repo=f"aim://{parsed.hostname}:{port}", experiment=experiment, remote=True)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConfigError(f"--aim_url {url!r}: expected aim://HOST:PORT or a local folder")
    if os.path.isfile(url):
        raise ConfigError(f"--aim_url must be a folder or aim://HOST:PORT; {url} is a file")
    return AimSettings(repo=os.path.abspath(url), experiment=experiment, remote=False)


def clearml_settings(config, output_dir: str) -> ClearmlSettings:
    offline = os.environ.get("CLEARML_OFFLINE_MODE", "").strip().lower() in ("1", "true", "yes", "on")
    return ClearmlSettings(
        project=config.clearml_project or config.experiment or DEFAULT_EXPERIMENT,
        task=config.clearml_task or os.path.basename(os.path.normpath(os.path.abspath(output_dir))),
        offline=offline,
    )


def check_clearml_server(settings: ClearmlSettings) -> None:
    """Fail before training when ClearML has nowhere to record (fms-hf-tuning only warns mid-run)."""
    if settings.offline or any(os.environ.get(v) for v in _CLEARML_SERVER_VARS):
        return
    if any(os.path.isfile(os.path.expanduser(p)) for p in ("~/clearml.conf", "~/.clearml.conf")):
        return
    raise ConfigError(
        "--trackers clearml: no ClearML server is configured; run `clearml-init` (or set "
        "CLEARML_API_HOST and its keys), or set CLEARML_OFFLINE_MODE=1 to record offline"
    )


def mlflow_settings(config, output_dir: str) -> MlflowSettings:
    experiment = config.mlflow_experiment or config.experiment or DEFAULT_EXPERIMENT
    uri = config.mlflow_tracking_uri
    if not uri:
        root = os.path.abspath(os.path.join(output_dir, "mlflow"))
        return MlflowSettings(
            tracking_uri=f"sqlite:///{root}/mlflow.db",
            experiment=experiment,
            artifact_location=os.path.join(root, "artifacts"),
            file_store=False,
        )
    scheme = urlparse(uri).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a bare path (or a Windows drive) is a file store
        path = urlparse(uri).path if scheme == "file" else uri
        path = os.path.abspath(path)
        if os.path.isfile(path):
            raise ConfigError(
                f"--mlflow_tracking_uri {uri!r} is a file; give a folder, sqlite:///file.db or a server URL"
            )
        return MlflowSettings(tracking_uri=path, experiment=experiment, artifact_location=None, file_store=True)
    return MlflowSettings(tracking_uri=uri, experiment=experiment, artifact_location=None, file_store=False)


def _missing_modules(names) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def check_libraries(tracker: str, mlflow: MlflowSettings | None = None) -> None:
    """Raise ConfigError naming the extra when a tracker's library is not installed."""
    needed = list(_LIBRARIES[tracker])
    if tracker == MLFLOW and mlflow is not None and mlflow.tracking_uri.split(":", 1)[0].split("+")[0] in _SQL_SCHEMES:
        needed += _SQL_LIBRARIES
    missing = _missing_modules(needed)
    if missing:
        raise ConfigError(
            f"--trackers {tracker} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install '{EXTRAS[tracker]}'"
        )


def validate(config, output_dir: str) -> None:
    """Every check that can fail before training starts."""
    parse_exp_metadata(config.exp_metadata)
    if config.run_uri_export_path and os.path.isfile(config.run_uri_export_path):
        raise ConfigError(f"--run_uri_export_path must be a folder; {config.run_uri_export_path} is a file")
    for tracker in requested(config):
        if tracker == AIM:
            aim_settings(config, output_dir)
            check_libraries(AIM)
        elif tracker == CLEARML:
            check_libraries(CLEARML)
            check_clearml_server(clearml_settings(config, output_dir))
        else:
            check_libraries(MLFLOW, mlflow_settings(config, output_dir))
