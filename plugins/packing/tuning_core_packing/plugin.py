"""Entry point of the packing plugin: padding-free batches and the multipack sampler.

Imports stay light here (no torch/transformers); the work lives in modules
imported inside the hooks.
"""

from __future__ import annotations

from tuning_core.plugin_api import ConfigError, SamplerSpec, hookimpl
from tuning_core_packing.arguments import PackingArguments, resolve


@hookimpl
def tuning_core_config_classes():
    return [PackingArguments]


@hookimpl
def tuning_core_validate_config(config):
    resolve(config)


@hookimpl
def tuning_core_patch_model(config, model):
    if not resolve(config).padding_free:
        return None
    from tuning_core_packing.model_check import prepare_model

    return prepare_model(model)


@hookimpl
def tuning_core_data_collator(config, tokenizer, model):
    if not resolve(config).padding_free:
        return None
    from tuning_core_packing.collator import PaddingFreeCollator

    return PaddingFreeCollator()


@hookimpl
def tuning_core_train_sampler(config, dataset, training_args):
    bins = resolve(config).multipack_bins
    if bins is None:
        return None
    from tuning_core_packing.sampler import MultipackBatchSampler, example_lengths

    lengths = example_lengths(dataset)
    if len(lengths) < bins:
        raise ConfigError(
            f"--multipack {bins}: the training set has {len(lengths)} examples, fewer than the "
            f"{bins} bins of a step; use fewer processes or more data"
        )
    sampler = MultipackBatchSampler(
        lengths,
        num_bins=bins,
        world_size=training_args.world_size,
        rank=training_args.process_index,
        examples_per_bin=training_args.per_device_train_batch_size,
        seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
    )
    return SamplerSpec(sampler=sampler, kind="batch_sampler", per_rank=True, description=sampler.describe())


@hookimpl
def tuning_core_trainer_callbacks(config, run):
    if resolve(config).multipack_bins is None:
        return []
    from tuning_core_packing.callback import PackingTokenLog

    return [PackingTokenLog(run.output_dir)]
