"""Which first-party plugin owns a flag or a tracker, so a missing plugin gets a useful message."""

FIRST_PARTY = {
    # entry-point name: (pip extra, distribution)
    "packing": ("packing", "tuning-core-packing"),
    "fused_ops": ("fused-ops", "tuning-core-fused-ops"),
    "peft_gptq": ("peft-gptq", "tuning-core-peft-gptq"),
    "trackers": ("aim", "tuning-core-trackers"),
    "eval": ("eval", "tuning-core-eval"),
}

FLAG_OWNERS = {
    "padding_free": "packing",
    "multipack": "packing",
    "fast_kernels": "fused_ops",
    "fused_lora": "fused_ops",
    "fast_loss": "fused_ops",
    "fused_linear_loss": "fused_ops",
    "fast_rms_norm": "fused_ops",
    "fast_rope": "fused_ops",
    "fast_swiglu": "fused_ops",
    "fast_lora": "fused_ops",
    "auto_gptq": "peft_gptq",
    "bnb_qlora": "peft_gptq",
    "aim_repo": "trackers",
    "aim_experiment": "trackers",
    "aim_remote_server_ip": "trackers",
    "aim_remote_server_port": "trackers",
    "mlflow_tracking_uri": "trackers",
    "mlflow_experiment": "trackers",
    "experiment": "trackers",
    "exp_metadata": "trackers",
    "run_uri_export_path": "trackers",
    "eval_tasks": "eval",
    "eval_tasks_limit": "eval",
    "eval_tasks_num_fewshot": "eval",
    "eval_tasks_batch_size": "eval",
}

TRACKER_OWNERS = {"aim": "trackers", "mlflow": "trackers"}
TRACKER_EXTRAS = {"aim": "aim", "mlflow": "mlflow"}

COMMAND_OWNERS = {"quantize": "peft_gptq", "eval": "eval"}


def install_hint(plugin: str, extra: str | None = None) -> str:
    extra = extra or FIRST_PARTY[plugin][0]
    return f"pip install 'tuning-core[{extra}]'"


def missing_flag_message(flag: str) -> str | None:
    plugin = FLAG_OWNERS.get(flag)
    if plugin is None:
        return None
    return f"--{flag} needs the {plugin} plugin: {install_hint(plugin)}"
