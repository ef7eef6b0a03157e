"""Checking controller YAML before training: each mistake is a ConfigError naming the file and the culprit."""

import textwrap
from pathlib import Path

import pytest

from tuning_core.controller import builtin_components, load_plan, plan_from_dict
from tuning_core.controller.callback import TrainerControllerCallback
from tuning_core.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trainercontroller_configs"

GOOD = """
controller_metrics:
  - name: training_loss
    class: Loss
controllers:
  - name: stop_low_loss
    triggers: [on_log]
    rule: training_loss["loss"] < 1.0
    operations: [hfcontrols.should_training_stop]
"""


def load(tmp_path, text):
    path = tmp_path / "ctl.yaml"
    path.write_text(textwrap.dedent(text))
    return load_plan(str(path), builtin_components())


def test_good_config_compiles(tmp_path):
    plan = load(tmp_path, GOOD)
    (ctl,) = plan.controllers
    assert ctl.name == "stop_low_loss" and ctl.triggers == ("on_log",)
    assert ctl.actions == (("hfcontrols", "should_training_stop"),)
    assert ctl.rule.evaluate({"training_loss": {"loss": 0.5}}) is True
    assert set(plan.operations) >= {"hfcontrols", "logcontrol"}  # defaults need no declaration


@pytest.mark.parametrize(
    "edit,needle",
    [
        (
            ('rule: training_loss["loss"] < 1.0', 'rule: training_loss["loss"] <'),
            "controller 'stop_low_loss': bad rule: invalid syntax",
        ),
        (
            ('rule: training_loss["loss"] < 1.0', "rule: __import__('os').system('clear')"),
            "controller 'stop_low_loss': bad rule: only these functions",
        ),
        (
            ('rule: training_loss["loss"] < 1.0', "rule: training_loss.__class__ == 1"),
            "controller 'stop_low_loss': bad rule: access to '__class__'",
        ),
        (
            ('rule: training_loss["loss"] < 1.0', "rule: eval_loss < 1.0"),
            "controller 'stop_low_loss': the rule uses 'eval_loss', which is not a metric defined under "
            "controller_metrics (defined: training_loss)",
        ),
        (
            ('rule: training_loss["loss"] < 1.0', "rule: '2 + 2'"),
            "controller 'stop_low_loss': bad rule: the rule '2 + 2' is not a condition",
        ),
        (
            ("hfcontrols.should_training_stop", "missingop.should_training_stop"),
            "controller 'stop_low_loss': unknown operation 'missingop'",
        ),
        (
            ("hfcontrols.should_training_stop", "hfcontrols.missingaction"),
            "controller 'stop_low_loss': operation 'hfcontrols' has no action 'missingaction'",
        ),
        (("hfcontrols.should_training_stop", "should_training_stop"), "must look like <operation>.<action>"),
        (("[on_log]", "[log_it_all]"), "controller 'stop_low_loss': unknown trigger 'log_it_all'"),
        (
            ("class: Loss", "class: MissingMetricClass"),
            "metric 'training_loss': unknown class 'MissingMetricClass'; available: EvalMetrics, HistoryBasedMetric",
        ),
        (("    triggers:", "    trigger:"), "controller 'stop_low_loss': unknown key 'trigger'"),
        (
            ("    rule:", "    patience: {patience_threshold: -1}\n    rule:"),
            "controller 'stop_low_loss': patience_threshold must be a whole number",
        ),
        (
            ("    rule:", "    patience: {patience_threshold: 2, mode: sometimes}\n    rule:"),
            "patience mode must be one of reset_on_failure, no_reset_on_failure",
        ),
        (("    rule:", "    config: {trigger_log_level: loud}\n    rule:"), "trigger_log_level must be"),
        (
            ("class: Loss", "class: Loss\n    arguments: {window_size: 3}"),
            "metric 'training_loss': bad arguments for Loss",
        ),
        (
            ("class: Loss", "class: HistoryBasedMetric\n    arguments: {window_size: 0}"),
            "metric 'training_loss': HistoryBasedMetric: window_size must be a positive integer or -1",
        ),
        (
            ("class: Loss", "class: EvalMetrics\n    arguments: {source_event: on_incorrect_event}"),
            "source_event must be on_evaluate or on_predict",
        ),
        (("name: training_loss", "name: len"), "metric 'len': 'len' is reserved"),
    ],
)
def test_mistakes_name_the_culprit(tmp_path, edit, needle):
    old, new = edit
    assert old in GOOD
    path = tmp_path / "ctl.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_plan(str(path), builtin_components())
    message = str(err.value)
    assert str(path) in message
    assert needle in message


def test_operation_arguments_are_checked(tmp_path):
    text = GOOD.replace("operations: [hfcontrols.should_training_stop]", "operations: [say.should_log]") + (
        "operations:\n  - name: say\n    class: LogControl\n    arguments: {log_format: '{args.__class__}'}\n"
    )
    with pytest.raises(ConfigError, match="operation 'say'.*private attribute"):
        load(tmp_path, text)
    text = text.replace("'{args.__class__}'", "x, log_level: chatty")
    with pytest.raises(ConfigError, match="operation 'say'.*log_level must be"):
        load(tmp_path, text)


def test_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="--trainer_controller_config_file: no such file"):
        load_plan(str(tmp_path / "absent.yaml"), builtin_components())
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path, "controllers: [unclosed")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(tmp_path, "- just a list")
    with pytest.raises(ConfigError, match="at least one controller"):
        load(tmp_path, "controller_metrics: []\n")
    with pytest.raises(ConfigError, match="top level: unknown key 'controler'"):
        load(tmp_path, GOOD + "controler: []\n")
    with pytest.raises(ConfigError, match="two controllers have this name"):
        load(tmp_path, GOOD + GOOD.split("controllers:\n")[1])


def test_yaml_is_loaded_safely(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")


def test_old_hyphenated_keys_are_accepted():
    plan = plan_from_dict(
        {
            "controller-metrics": [{"name": "w", "class": "HistoryBasedMetric", "arguments": {"window-size": 2}}],
            "controllers": [
                {
                    "name": "c",
                    "triggers": ["on_log"],
                    "rule": "len(w['training_loss']['loss']) == 2",
                    "operations": ["hfcontrols.should_training_stop"],
                }
            ],
        },
        builtin_components(),
    )
    assert plan.new_metrics()["w"].window_size == 2


def test_every_example_compiles_and_builds_a_callback():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        plan = load_plan(str(path), builtin_components())
        assert plan.controllers, path
        assert isinstance(TrainerControllerCallback(plan), TrainerControllerCallback)


def test_events_and_control_flags_match_transformers():
    """The lists kept to avoid importing transformers at validation time must not drift."""
    import dataclasses

    from transformers import TrainerCallback, TrainerControl

    from tuning_core.controller.events import TRAINER_EVENTS
    from tuning_core.controller.operations import TRAINER_CONTROL_FLAGS

    assert set(TRAINER_EVENTS) == {m for m in dir(TrainerCallback) if m.startswith("on_")}
    assert set(TRAINER_CONTROL_FLAGS) == {
        f.name for f in dataclasses.fields(TrainerControl) if f.name.startswith("should_")
    }


def test_validate_hook_rejects_bad_file_before_training(tmp_path, builtin_plugins_only):
    from tuning_core.builtin import controller as plugin
    from tuning_core.config import make_config
    from tuning_core.plugin_api import RunContext

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace('training_loss["loss"] < 1.0', 'training_los["loss"] < 1.0'))
    config = make_config(trainer_controller_config_file=str(bad))
    with pytest.raises(ConfigError, match="controller 'stop_low_loss'.*'training_los'"):
        plugin.tuning_core_validate_config(config)

    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    config = make_config(trainer_controller_config_file=str(good))
    plugin.tuning_core_validate_config(config)
    (callback,) = plugin.tuning_core_trainer_callbacks(config, RunContext(output_dir=str(tmp_path)))
    assert isinstance(callback, TrainerControllerCallback)
    assert [c.name for c in callback.plan.controllers] == ["stop_low_loss"]
    assert plugin.tuning_core_trainer_callbacks(make_config(), RunContext(output_dir=str(tmp_path))) == []


def test_train_cli_rejects_bad_controller_before_loading(
    tmp_path, tiny_llama, twitter_data, builtin_plugins_only, capsys
):
    from tuning_core.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("[on_log]", "[on_lgo]"))
    out = tmp_path / "out"
    rc = main(
        [
            "train",
            "--model_name_or_path",
            str(tiny_llama),
            "--training_data_path",
            str(twitter_data),
            "--output_dir",
            str(out),
            "--trainer_controller_config_file",
            str(bad),
        ]
    )
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code
    assert "controller 'stop_low_loss': unknown trigger 'on_lgo'" in err and "Traceback" not in err
    assert not (out / "training_logs.jsonl").exists()
