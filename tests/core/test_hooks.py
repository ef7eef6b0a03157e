"""A spy plugin proves every hook is called, in order, with what it needs; providers can take over."""

import pytest

from tuning_core.pipeline import run_training
from tuning_core.plugin_api import CliCommand, LoadedModel, PatchReport, SamplerSpec, hookimpl
from tuning_core.plugins import get_plugin_manager

from .helpers import losses, train_args


class Spy:
    def __init__(self, take_over=False):
        self.calls = []
        self.take_over = take_over

    @hookimpl
    def tuning_core_config_classes(self):
        self.calls.append(("config_classes", None))
        return []

    @hookimpl
    def tuning_core_validate_config(self, config):
        self.calls.append(("validate_config", config.model_name_or_path))

    @hookimpl
    def tuning_core_load_model(self, config, purpose):
        self.calls.append(("load_model", purpose))
        if self.take_over:
            from tuning_core.builtin.model_loader import tuning_core_load_model as builtin

            loaded = builtin(config, purpose)
            return LoadedModel(loaded.model, loaded.tokenizer, "spy loader")

    @hookimpl
    def tuning_core_augment_model(self, config, model, tokenizer):
        self.calls.append(("augment_model", type(model).__name__))

    @hookimpl
    def tuning_core_patch_model(self, config, model):
        self.calls.append(("patch_model", type(model).__name__))
        return PatchReport("spy", {"Nothing -> Nothing": 0}, ["spy looked at the model"])

    @hookimpl
    def tuning_core_data_collator(self, config, tokenizer, model):
        self.calls.append(("data_collator", tokenizer.pad_token_id))
        if self.take_over:
            from tuning_core.builtin.collator import PaddedCollator

            class SpyCollator(PaddedCollator):
                seen = 0

                def __call__(self, rows):
                    SpyCollator.seen += len(rows)
                    return super().__call__(rows)

            self.collator = SpyCollator(tokenizer.pad_token_id)
            return self.collator

    @hookimpl
    def tuning_core_train_sampler(self, config, dataset, training_args):
        self.calls.append(("train_sampler", len(dataset)))
        if self.take_over:
            order = list(range(len(dataset)))[::-1]  # deterministic: last example first
            self.order = order
            return SamplerSpec(order, kind="sampler", description="reversed order")

    @hookimpl
    def tuning_core_trainer_callbacks(self, config, run):
        self.calls.append(("trainer_callbacks", sorted(run.timings)))
        self.callback = StepCounter()
        return [self.callback]

    @hookimpl
    def tuning_core_cli_commands(self):
        self.calls.append(("cli_commands", None))

        def run(args):
            self.calls.append(("spy_command", args.word))
            return 7

        return [CliCommand("spy", "A spy command.", lambda p: p.add_argument("--word"), run)]


class StepCounter:
    """The trainer callback the spy contributes."""

    def __new__(cls):
        from transformers import TrainerCallback

        class Counter(TrainerCallback):
            steps = 0

            def on_step_end(self, args, state, control, **kwargs):
                Counter.steps += 1

        return Counter()


@pytest.fixture(scope="module")
def spied_run(tiny_llama, twitter_data, tmp_path_factory):
    """One training run (1 step) with an observing spy registered: (spy, result)."""
    pm = get_plugin_manager()
    spy = Spy()
    pm.register(spy, name="spy")
    try:
        out = tmp_path_factory.mktemp("spied")
        result = run_training(train_args(tiny_llama, twitter_data, out, "--peft_method", "lora", steps=1))
    finally:
        pm.unregister(spy)
    return spy, result


@pytest.fixture(scope="module")
def taken_over_run(tiny_llama, twitter_data, tmp_path_factory):
    """One training run (2 steps of 4 rows) whose providers a spy takes over: (spy, result, output_dir)."""
    pm = get_plugin_manager()
    spy = Spy(take_over=True)
    pm.register(spy, name="spy")
    try:
        out = tmp_path_factory.mktemp("taken")
        result = run_training(train_args(tiny_llama, twitter_data, out, "--peft_method", "lora", steps=2, batch=4))
    finally:
        pm.unregister(spy)
    return spy, result, out


@pytest.fixture
def spy():
    pm = get_plugin_manager()
    spy = Spy()
    pm.register(spy, name="spy")
    yield spy
    pm.unregister(spy)


TRAINING_ORDER = [
    "config_classes",
    "validate_config",
    "load_model",
    "augment_model",
    "patch_model",
    "data_collator",
    "train_sampler",
    "trainer_callbacks",
]


def test_every_training_hook_called_in_order(spied_run, tiny_llama):
    spy, _ = spied_run
    assert [name for name, _ in spy.calls] == TRAINING_ORDER
    calls = dict(spy.calls)
    assert calls["validate_config"] == str(tiny_llama)


def test_tuning_core_config_classes(builtin_plugins_only, tiny_llama, twitter_data, tmp_path):
    from dataclasses import dataclass, field

    from tuning_core.config import load_train_config

    @dataclass
    class SpyArguments:
        spy_level: int = field(default=1, metadata={"help": "How closely to watch."})

    class Plugin:
        @hookimpl
        def tuning_core_config_classes(self):
            return [SpyArguments]

    builtin_plugins_only.register(Plugin(), name="spy_args")
    config = load_train_config(train_args(tiny_llama, twitter_data, tmp_path, "--spy_level", "3"), builtin_plugins_only)
    assert config.spy_level == 3


def test_tuning_core_validate_config(spy, tiny_llama, twitter_data, tmp_path):
    from tuning_core.plugin_api import ConfigError

    class Refuses:
        @hookimpl
        def tuning_core_validate_config(self, config):
            raise ConfigError("--spy_level: no")

    pm = get_plugin_manager()
    pm.register(Refuses(), name="refuses")
    try:
        with pytest.raises(ConfigError, match="--spy_level: no"):
            run_training(train_args(tiny_llama, twitter_data, tmp_path))
    finally:
        pm.unregister(name="refuses")
    assert "load_model" not in dict(spy.calls)  # refused before anything heavy loaded


def test_tuning_core_load_model(spied_run, taken_over_run):
    assert dict(spied_run[0].calls)["load_model"] == "train"
    assert "[builtin.model_loader] loaded model:" in "\n".join(spied_run[1].banner)
    assert "[spy] loaded model: spy loader" in taken_over_run[1].banner


def test_tuning_core_augment_model(spied_run):
    spy, result = spied_run
    assert dict(spy.calls)["augment_model"] == "LlamaForCausalLM"  # PEFT not applied yet
    assert any(line.startswith("[builtin.peft] peft_method lora:") for line in result.banner)


def test_tuning_core_patch_model(spied_run):
    spy, result = spied_run
    assert dict(spy.calls)["patch_model"] == "PeftModelForCausalLM"  # patches see the augmented model
    assert "[spy] spy looked at the model" in result.banner
    assert "[spy] patched Nothing -> Nothing (x0)" in result.banner


def test_tuning_core_data_collator(spied_run, taken_over_run):
    assert dict(spied_run[0].calls)["data_collator"] is not None  # the pad token is in place before collation
    spy, result, _ = taken_over_run
    assert "[spy] collator SpyCollator" in result.banner
    # two steps of four rows went through the spy's collator (the loader may prefetch one batch more)
    assert spy.collator.seen in (8, 12)


def test_tuning_core_train_sampler(spied_run, taken_over_run):
    assert dict(spied_run[0].calls)["train_sampler"] == 240
    spy, result, out = taken_over_run
    assert "[spy] sampler reversed order" in result.banner
    first_batch = next(iter(result.trainer.get_train_dataloader()))
    expected = [len(result.trainer.train_dataset[i]["input_ids"]) for i in spy.order[:4]]
    assert first_batch["attention_mask"].sum(dim=1).tolist() == expected
    assert len(losses(out)) == 2


def test_tuning_core_trainer_callbacks(spied_run, taken_over_run):
    assert dict(spied_run[0].calls)["trainer_callbacks"] == ["data_preprocessing_seconds", "model_load_seconds"]
    spy, _, _ = taken_over_run
    assert spy.callback.steps == 2


def test_tuning_core_cli_commands(spy):
    from tuning_core.cli import main

    assert main(["spy", "--word", "hello"]) == 7
    assert ("spy_command", "hello") in spy.calls


class RankSampler:
    """Answers the sampler hook with a plain sampler that claims (or not) to be this rank's share already."""

    def __init__(self, per_rank):
        self.per_rank = per_rank

    @hookimpl
    def tuning_core_train_sampler(self, config, dataset, training_args):
        self.order = list(range(len(dataset)))[::-3]
        return SamplerSpec(self.order, kind="sampler", per_rank=self.per_rank, description="every third, reversed")


@pytest.mark.parametrize("per_rank", [True, False])
def test_tuning_core_train_sampler_plain_sampler_per_rank(per_rank, tiny_llama, twitter_data, tmp_path, monkeypatch):
    """A per-rank plain sampler reaches the loader unsharded; a global one goes through accelerate's sharding."""
    pm = get_plugin_manager()
    plugin = RankSampler(per_rank)
    pm.register(plugin, name="rank_sampler")
    try:
        result = run_training(train_args(tiny_llama, twitter_data, tmp_path, "--peft_method", "lora", steps=1, batch=4))
    finally:
        pm.unregister(plugin)
    trainer = result.trainer
    prepared = []
    real_prepare = trainer.accelerator.prepare
    monkeypatch.setattr(trainer.accelerator, "prepare", lambda *a: prepared.append(a) or real_prepare(*a))
    loader = trainer.get_train_dataloader()
    assert len(prepared) == (0 if per_rank else 1)
    first_batch = next(iter(loader))
    expected = [len(trainer.train_dataset[i]["input_ids"]) for i in plugin.order[:4]]
    assert first_batch["attention_mask"].sum(dim=1).tolist() == expected
    assert len(loader) == len(plugin.order) // 4 + (len(plugin.order) % 4 > 0)
