"""Which first-party plugin owns each flag (and alias), for the install hint when it is missing.

Generated from the plugins' config classes by `python -m tuning_core.plugin_hints --write`: do not edit.
"""

FLAG_OWNERS = {
    "aim_experiment": "trackers",
    "aim_remote_server_ip": "trackers",
    "aim_remote_server_port": "trackers",
    "aim_repo": "trackers",
    "aim_url": "trackers",
    "auto_gptq": "peft_gptq",
    "bnb_qlora": "peft_gptq",
    "clearml_project": "trackers",
    "clearml_task": "trackers",
    "eval_tasks": "eval",
    "eval_tasks_batch_size": "eval",
    "eval_tasks_limit": "eval",
    "eval_tasks_num_fewshot": "eval",
    "exp_metadata": "trackers",
    "experiment": "trackers",
    "fast_cross_entropy": "fused_ops",
    "fast_kernels": "fused_ops",
    "fast_lora": "fused_ops",
    "fast_moe": "fused_ops",
    "fast_rms_norm": "fused_ops",
    "fast_rope": "fused_ops",
    "fast_swiglu": "fused_ops",
    "fused_linear_loss": "fused_ops",
    "fused_lora": "fused_ops",
    "fused_loss_chunk_size": "fused_ops",
    "fused_ops_backend": "fused_ops",
    "mlflow_experiment": "trackers",
    "mlflow_tracking_uri": "trackers",
    "multipack": "packing",
    "padding_free": "packing",
    "run_uri_export_path": "trackers",
}
