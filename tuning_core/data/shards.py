"""--do_dataprocessing_only output in fms-hf-tuning's layout: NAME/ds_00000.parquet, one file per shard."""

from __future__ import annotations

from pathlib import Path

from tuning_core.errors import ConfigError

SHARD_FLAGS = ("num_train_dataset_shards", "num_eval_dataset_shards")


def check_data_extras(config) -> None:
    """The shard counts, and the vision-language flag tuning-core cannot honour yet."""
    if getattr(config, "dataset_image_field", None):
        raise ConfigError(
            f"--dataset_image_field {config.dataset_image_field}: vision-language tuning is not "
            "supported yet; tuning-core tunes text-only causal language models"
        )
    for flag in SHARD_FLAGS:
        value = getattr(config, flag, 1)
        if value < 1:
            raise ConfigError(f"--{flag} must be at least 1, not {value}")


def shard_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"ds_{index:05d}.parquet"


def write_shards(dataset, folder, num_shards: int) -> list[Path]:
    """Contiguous shards (shard i holds rows i*n/k .. (i+1)*n/k), so reading them in order gives the dataset back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("ds_*.parquet"):  # a rerun with fewer shards must not leave stale ones behind
        old.unlink()
    if num_shards > max(len(dataset), 1):
        raise ConfigError(
            f"cannot write {len(dataset)} examples as {num_shards} shards; "
            f"lower the shard count to at most {max(len(dataset), 1)}"
        )
    out = []
    for i in range(num_shards):
        target = shard_path(folder, i)
        dataset.shard(num_shards=num_shards, index=i, contiguous=True).to_parquet(str(target))
        out.append(target)
    return out
