"""Entry point: the tracker flags, their checks, and the Aim / MLflow / ClearML trainer callbacks.

Import-light on purpose: aim, mlflow, clearml and transformers load only when a run asks for a tracker.
"""

from __future__ import annotations

from tuning_core.plugin_api import hookimpl
from tuning_core_trackers import settings
from tuning_core_trackers.arguments import TrackerArguments

_AIM_FLAGS = ("aim_repo", "aim_experiment", "aim_remote_server_ip", "aim_remote_server_port", "aim_url")
_MLFLOW_FLAGS = ("mlflow_tracking_uri", "mlflow_experiment")
_CLEARML_FLAGS = ("clearml_project", "clearml_task")


@hookimpl
def tuning_core_config_classes():
    return [TrackerArguments]


@hookimpl
def tuning_core_validate_config(config):
    settings.validate(config, config.output_dir)


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    names = settings.requested(config)
    run.notes.extend(_ignored_flag_notes(config, names))
    if not names or not run.is_main_process:  # only rank 0 records
        return []
    from tuning_core_trackers.callback import default_run_name
    from tuning_core_trackers.records import plain_json

    common = dict(
        hparams=plain_json(config.to_dict()),
        metadata=settings.parse_exp_metadata(config.exp_metadata),
        timings=run.timings,
        export_dir=settings.export_dir(config, run.output_dir),
        run_name=default_run_name(run.output_dir),
    )
    callbacks = []
    for name in names:
        if name == settings.AIM:
            from tuning_core_trackers.aim_tracker import AimTracker

            where = settings.aim_settings(config, run.output_dir)
            callbacks.append(AimTracker(where, **common))
            run.notes.append(
                f"aim: experiment {where.experiment!r} in {where.repo}; run hash -> "
                f"{common['export_dir']}/aim_tracker.json"
            )
        elif name == settings.CLEARML:
            from tuning_core_trackers.clearml_tracker import ClearmlTracker

            where = settings.clearml_settings(config, run.output_dir)
            callbacks.append(ClearmlTracker(where, **common))
            mode = "offline" if where.offline else "server"
            run.notes.append(
                f"clearml ({mode}): project {where.project!r}, task {where.task!r}; task id -> "
                f"{common['export_dir']}/clearml_tracker.json"
            )
        else:
            from tuning_core_trackers.mlflow_tracker import MlflowTracker

            where = settings.mlflow_settings(config, run.output_dir)
            callbacks.append(MlflowTracker(where, **common))
            run.notes.append(
                f"mlflow: experiment {where.experiment!r} at {where.tracking_uri}; run id -> "
                f"{common['export_dir']}/mlflow_tracker.json"
            )
    return callbacks


def _ignored_flag_notes(config, names) -> list[str]:
    """Say so when a tracker's flags are set but the tracker is not in --trackers."""
    notes = []
    for tracker, flags in (
        (settings.AIM, _AIM_FLAGS),
        (settings.MLFLOW, _MLFLOW_FLAGS),
        (settings.CLEARML, _CLEARML_FLAGS),
    ):
        given = [f"--{flag}" for flag in flags if getattr(config, flag, None) is not None]
        if given and tracker not in names:
            notes.append(f"{', '.join(given)} ignored: {tracker} is not in --trackers")
    return notes
