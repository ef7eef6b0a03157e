"""The per-rank multipack batch sampler: shares, determinism, resume, lengths and the hook."""

from types import SimpleNamespace

import numpy as np
import pytest
from accelerate import skip_first_batches
from baselines import long_tailed_lengths
from datasets import Dataset
from torch.utils.data import DataLoader

from tuning_core.config.config import Config
from tuning_core.errors import ConfigError
from tuning_core.plugin_api import SamplerSpec
from tuning_core_packing import plugin
from tuning_core_packing.arguments import PackingArguments
from tuning_core_packing.collator import PaddingFreeCollator
from tuning_core_packing.sampler import MultipackBatchSampler, example_lengths

LENGTHS = long_tailed_lengths(1500, seed=7, max_len=1024)


def _ranks(world, bins, epoch=0, seed=0):
    samplers = [MultipackBatchSampler(LENGTHS, bins, world, r, examples_per_bin=4, seed=seed) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    return samplers


@pytest.mark.parametrize("world,bins", [(1, 1), (1, 3), (2, 2), (2, 4), (4, 4)])
def test_ranks_share_every_example_once_in_equal_numbers_of_batches(world, bins):
    samplers = _ranks(world, bins)
    batches = [list(s) for s in samplers]
    assert all(len(b) == len(samplers[0]) == len(batches[0]) for b, s in zip(batches, samplers, strict=False))
    seen = sorted(i for rank in batches for batch in rank for i in batch)
    assert seen == list(range(len(LENGTHS)))
    assert all(len(batch) >= 1 for rank in batches for batch in rank)
    planned = samplers[0].planned_tokens()
    actual = np.array([[LENGTHS[batch].sum() for batch in rank] for rank in batches]).T
    assert np.array_equal(planned, actual)  # the plan every rank computes is what each rank yields
    if world > 1:
        per_micro = actual.max(1).sum() / actual.mean(1).sum()
        assert per_micro <= 1.02


def test_deterministic_for_seed_and_epoch_across_instances():
    a, b = _ranks(1, 2, epoch=3)[0], _ranks(1, 2, epoch=3)[0]
    assert list(a) == list(b)  # a fresh process (e.g. a resumed run) builds the same epoch
    a.set_epoch(4)
    assert list(a) != list(b)
    assert list(_ranks(1, 2, seed=1)[0]) != list(_ranks(1, 2, seed=0)[0])
    assert len(a) == len(b)  # same number of batches every epoch


def test_resume_skips_to_the_same_remaining_batches():
    sampler = _ranks(2, 2, epoch=1)[1]
    data = Dataset.from_dict({"input_ids": [[7] * int(n) for n in LENGTHS], "labels": [[7] * int(n) for n in LENGTHS]})
    full = [b["input_ids"].numel() for b in DataLoader(data, batch_sampler=sampler, collate_fn=PaddingFreeCollator())]
    resumed_sampler = _ranks(2, 2, epoch=1)[1]
    loader = DataLoader(data, batch_sampler=resumed_sampler, collate_fn=PaddingFreeCollator())
    rest = [b["input_ids"].numel() for b in skip_first_batches(loader, 5)]
    assert rest == full[5:]


def test_example_lengths_follow_dataset_views():
    rows = [[1] * n for n in (3, 1, 4, 1, 5, 9, 2, 6)]
    ds = Dataset.from_dict({"input_ids": rows})
    assert example_lengths(ds).tolist() == [3, 1, 4, 1, 5, 9, 2, 6]
    view = ds.shuffle(seed=1).select([0, 2, 5])
    assert example_lengths(view).tolist() == [len(r["input_ids"]) for r in view]
    assert example_lengths([{"input_ids": [1, 2]}, {"input_ids": [3]}]).tolist() == [2, 1]


def _config(**fields):
    return Config([PackingArguments(**fields)], training_args=SimpleNamespace(world_size=1, group_by_length=False))


def test_hook_returns_per_rank_batch_sampler():
    targs = SimpleNamespace(world_size=1, process_index=0, per_device_train_batch_size=4, seed=3, data_seed=None)
    ds = Dataset.from_dict({"input_ids": [[1] * int(n) for n in LENGTHS[:200]]})
    spec = plugin.tuning_core_train_sampler(_config(padding_free=["huggingface"], multipack=[2]), ds, targs)
    assert isinstance(spec, SamplerSpec) and spec.kind == "batch_sampler" and spec.per_rank
    assert spec.sampler.num_bins == 2 and spec.sampler.seed == 3
    assert sorted(i for batch in spec.sampler for i in batch) == list(range(200))
    assert plugin.tuning_core_train_sampler(_config(padding_free=["huggingface"]), ds, targs) is None


def test_hook_refuses_fewer_examples_than_bins():
    targs = SimpleNamespace(world_size=1, process_index=0, per_device_train_batch_size=4, seed=0, data_seed=None)
    ds = Dataset.from_dict({"input_ids": [[1, 2], [3]]})
    with pytest.raises(ConfigError, match="--multipack 4: the training set has 2 examples"):
        plugin.tuning_core_train_sampler(_config(padding_free=["huggingface"], multipack=[4]), ds, targs)
