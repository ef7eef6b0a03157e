"""Hooks are called through pluggy: wrappers run, the banner still learns which plugin answered, and
TUNING_CORE_TRACE_PLUGINS=1 prints every call."""

import pytest

from tuning_core.plugin_api import CliCommand, SamplerSpec, hookimpl
from tuning_core.plugins import build_plugin_manager, call_all, call_first


class Passes:
    @hookimpl
    def tuning_core_train_sampler(self, config, dataset, training_args):
        return None


class Answers:
    @hookimpl
    def tuning_core_train_sampler(self, config, dataset, training_args):
        return SamplerSpec([2, 1, 0], description="answered")

    @hookimpl
    def tuning_core_cli_commands(self):
        return [CliCommand("answers", "", lambda p: None, lambda a: 0)]


class Wraps:
    def __init__(self):
        self.seen = []

    @hookimpl(wrapper=True)
    def tuning_core_train_sampler(self, config, dataset, training_args):
        spec = yield
        self.seen.append(("train_sampler", spec.description))
        spec.description += " (wrapped)"
        return spec

    @hookimpl(wrapper=True)
    def tuning_core_cli_commands(self):
        commands = yield
        self.seen.append(("cli_commands", len(commands)))
        return commands


@pytest.fixture
def pm(builtin_plugins_only):
    answers, passes, wraps = Answers(), Passes(), Wraps()
    for name, plugin in (("answers", answers), ("passes", passes), ("wraps", wraps)):
        builtin_plugins_only.register(plugin, name=name)
    builtin_plugins_only.wraps = wraps
    return builtin_plugins_only


def test_call_first_runs_wrappers_and_names_the_answering_plugin(pm):
    name, spec = call_first(pm, "tuning_core_train_sampler", config=None, dataset=None, training_args=None)
    assert name == "answers"  # "passes" ran first (registered last) and returned None
    assert spec.description == "answered (wrapped)"
    assert pm.wraps.seen == [("train_sampler", "answered")]


def test_call_all_runs_wrappers_and_pairs_results_with_plugins(pm):
    answers = call_all(pm, "tuning_core_cli_commands")
    assert ("cli_commands", len(answers)) in pm.wraps.seen
    by_plugin = {name: [c.name for c in commands] for name, commands in answers}
    assert by_plugin["answers"] == ["answers"]
    assert "builtin.commands" in by_plugin and None not in by_plugin


def test_nothing_answers(builtin_plugins_only):
    builtin_plugins_only.register(Passes(), name="passes")
    assert call_first(
        builtin_plugins_only, "tuning_core_train_sampler", config=None, dataset=None, training_args=None
    ) == (None, None)


def test_trace_plugins_prints_every_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "")
    monkeypatch.setenv("TUNING_CORE_TRACE_PLUGINS", "1")
    pm, _ = build_plugin_manager()
    pm.register(Answers(), name="answers")
    call_first(pm, "tuning_core_train_sampler", config="CFG", dataset=[1, 2, 3], training_args=None)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "[trace] tuning_core_train_sampler(config='CFG', dataset=[1, 2, 3], training_args=None) -> plugins: answers"
    )
    assert err[1].startswith("[trace] tuning_core_train_sampler returned SamplerSpec(sampler=[2, 1, 0]")
    assert len(err) == 2


def test_trace_is_off_by_default(monkeypatch, capsys):
    monkeypatch.setenv("TUNING_CORE_PLUGINS", "")
    monkeypatch.delenv("TUNING_CORE_TRACE_PLUGINS", raising=False)
    pm, _ = build_plugin_manager()
    pm.hook.tuning_core_cli_commands()
    assert capsys.readouterr().err == ""
