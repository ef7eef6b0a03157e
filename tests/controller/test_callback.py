"""The controller callback inside a real (bare) transformers Trainer on the tiny Llama."""

import logging
from typing import ClassVar

import pytest

from tuning_core.controller import MetricHandler, Operation, merge_components
from tuning_core.controller.patience import Patience
from tuning_core.errors import ConfigError
from tuning_core.plugin_api import ControllerComponents


def train_losses(state):
    return [(e["step"], e["loss"]) for e in state.log_history if "loss" in e]


def eval_losses(state):
    return [(e["step"], e["eval_loss"]) for e in state.log_history if "eval_loss" in e]


def checkpoint_steps(output_dir):
    return sorted(int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*"))


def test_stop_when_loss_below_threshold(run_controlled):
    trainer, callback = run_controlled(
        """
controller_metrics:
  - name: training_loss
    class: Loss
controllers:
  - name: low_loss
    triggers: [on_log]
    rule: training_loss["loss"] < 5.5
    operations: [hfcontrols.should_training_stop]
""",
        max_steps=12,
    )
    losses = train_losses(trainer.state)
    first_below = next(step for step, loss in losses if loss < 5.5)
    assert first_below < 12, "precondition: the tiny model must get below the threshold"
    assert trainer.state.global_step == first_below
    assert all(loss >= 5.5 for step, loss in losses if step < first_below)
    assert [(f.controller, f.step, f.actions) for f in callback.firings] == [
        ("low_loss", first_below, ("hfcontrols.should_training_stop",))
    ]


def test_stop_at_step_with_dict_shorthand(run_controlled):
    trainer, callback = run_controlled(
        """
controller_metrics:
  - name: trainer_state
    class: TrainingState
controllers:
  - name: at_three
    triggers: [on_step_end]
    rule: trainer_state.global_step >= 3 and trainer_state["is_final"] == False
    operations: [hfcontrols.should_training_stop]
""",
        max_steps=10,
    )
    assert trainer.state.global_step == 3
    assert callback.firings[0].event == "on_step_end"


def test_save_on_condition_writes_exactly_those_checkpoints(run_controlled, tmp_path):
    trainer, _callback = run_controlled(
        """
controller_metrics:
  - name: trainer_state
    class: TrainingState
controllers:
  - name: save_every_third
    triggers: [on_step_end]
    rule: trainer_state["global_step"] % 3 == 0
    operations: [hfcontrols.should_save]
""",
        max_steps=7,
    )
    assert trainer.state.global_step == 7
    assert checkpoint_steps(tmp_path / "out") == [3, 6]  # save_strategy is "no": only the controller saved


def test_save_on_new_best_loss_uses_unbounded_window(run_controlled, tmp_path):
    trainer, _ = run_controlled(
        """
controller_metrics:
  - name: w
    class: HistoryBasedMetric
    arguments: {window_size: -1}
controllers:
  - name: save_new_best
    triggers: [on_log]
    rule: len(w["training_loss"]["loss"]) > 1 and w["training_loss"]["loss"][-1] < min(w["training_loss"]["loss"][:-1])
    operations: [hfcontrols.should_save]
""",
        max_steps=6,
    )
    losses = train_losses(trainer.state)
    expected = [
        step for i, (step, loss) in enumerate(losses) if i > 0 and loss < min(earlier for _, earlier in losses[:i])
    ]
    assert 0 < len(expected) < len(losses) - 1, "precondition: the loss curve is not monotonic"
    assert checkpoint_steps(tmp_path / "out") == expected


def expected_patience_stop(values, threshold):
    """Where the rising-eval-loss rule with patience should stop, computed from the recorded values."""
    p = Patience(threshold)
    for i in range(1, len(values)):
        if p.should_act(values[i][1] > values[i - 1][1]):
            return values[i][0]
    return None


def test_early_stop_on_rising_eval_loss_with_patience(run_controlled):
    trainer, callback = run_controlled(
        """
controller_metrics:
  - name: eval_window
    class: HistoryBasedMetric
    arguments: {window_size: 2}
controllers:
  - name: rising_eval_loss
    triggers: [on_evaluate]
    rule: len(eval_window["metrics"]["eval_loss"]) == 2 and eval_window["metrics"]["eval_loss"][1] > eval_window["metrics"]["eval_loss"][0]
    patience: {patience_threshold: 1}
    operations: [hfcontrols.should_training_stop]
""",
        max_steps=20,
        eval_strategy="steps",
        eval_steps=2,
    )
    evals = eval_losses(trainer.state)
    stop = expected_patience_stop(evals, 1)
    assert stop is not None and stop < 20, f"precondition: eval loss on noise must rise: {evals}"
    assert trainer.state.global_step == stop
    assert evals[-1][0] == stop
    assert len(callback.firings) == 1


def test_patience_modes():
    reset = Patience(2)
    assert [reset.should_act(x) for x in (True, True, False, True, True, True, True)] == [
        False,
        False,
        False,
        False,
        False,
        True,
        False,
    ]
    keep = Patience(2, "no_reset_on_failure")
    assert [keep.should_act(x) for x in (True, False, True, False, True)] == [False, False, False, False, True]
    with pytest.raises(ValueError):
        Patience(1, "sometimes")


def test_metric_not_yet_computed_skips_the_rule(run_controlled, caplog):
    # Loss is computed on on_log, which comes after on_step_end: at step 1 the rule cannot run.
    caplog.set_level(logging.DEBUG, logger="tuning_core.controller")
    trainer, _callback = run_controlled(
        """
controller_metrics:
  - name: training_loss
    class: Loss
controllers:
  - name: any_loss
    triggers: [on_step_end]
    rule: training_loss["loss"] > 0
    operations: [hfcontrols.should_training_stop]
""",
        max_steps=10,
    )
    assert trainer.state.global_step == 2
    assert any("any_loss' skipped at on_step_end" in r.getMessage() for r in caplog.records)


def test_log_operation_formats_metrics(run_controlled, caplog):
    caplog.set_level(logging.INFO, logger="tuning_core.controller")
    run_controlled(
        """
controller_metrics:
  - name: trainer_state
    class: TrainingState
  - name: training_loss
    class: Loss
  - name: rank
    class: PerProcessState
operations:
  - name: say
    class: LogControl
    arguments:
      log_format: 'step {trainer_state[global_step]} rank {rank[rank]} loss {training_loss[loss]:.2f} at {event_name} by {control_name}'
      log_level: warning
controllers:
  - name: talk
    triggers: [on_log]
    rule: training_loss != None and trainer_state["global_step"] <= 2
    operations: [say.should_log, logcontrol.should_log]
""",
        max_steps=3,
    )
    said = [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage().startswith("step ")]
    assert [r.getMessage().split(" loss")[0] for r in said] == ["step 1 rank 0", "step 2 rank 0"]
    assert all(r.getMessage().endswith("at on_log by talk") for r in said)
    assert any(r.getMessage() == "trainer controller 'talk' fired at on_log (step 2)" for r in caplog.records)


def test_rule_type_error_stops_training_with_config_error(run_controlled):
    with pytest.raises(ConfigError, match="controller 'bad_types'.*cannot compare"):
        run_controlled(
            """
controller_metrics:
  - name: trainer_state
    class: TrainingState
controllers:
  - name: bad_types
    triggers: [on_step_end]
    rule: trainer_state["epoch"] < "two"
    operations: [hfcontrols.should_training_stop]
""",
            max_steps=3,
        )


class StepParity(MetricHandler):
    """A plugin-style metric: whether the global step is even."""

    events = ("on_step_end",)

    def __init__(self, name, modulus=2):
        super().__init__(name)
        self.modulus = modulus

    def compute(self, event):
        return {"even": event.state.global_step % self.modulus == 0}


class Recorder(Operation):
    calls: ClassVar[list] = []

    def should_record(self, event, metrics, controller):
        Recorder.calls.append((controller, event.state.global_step, metrics["parity"]["even"]))


def test_tuning_core_controller_components(run_controlled):
    import pluggy

    from tuning_core import hookspecs
    from tuning_core.controller import gather_components
    from tuning_core.plugin_api import hookimpl

    class Plugin:
        @hookimpl
        def tuning_core_controller_components(self):
            return ControllerComponents(metrics={"StepParity": StepParity}, operations={"Recorder": Recorder})

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Plugin())
    components = gather_components(pm)
    assert components.metrics["StepParity"] is StepParity and "Loss" in components.metrics

    Recorder.calls.clear()
    _trainer, _ = run_controlled(
        """
controller_metrics:
  - name: parity
    class: StepParity
    arguments: {modulus: 2}
operations:
  - name: rec
    class: Recorder
controllers:
  - name: on_even
    triggers: [on_step_end]
    rule: parity["even"]
    operations: [rec.should_record]
""",
        max_steps=5,
        components=components,
    )
    assert Recorder.calls == [("on_even", 2, True), ("on_even", 4, True)]


def test_conflicting_or_invalid_components_are_errors():
    class Other(MetricHandler):
        pass

    with pytest.raises(ConfigError, match="two plugins register a controller metric handler named 'Loss'"):
        merge_components([ControllerComponents(metrics={"Loss": Other})])
    with pytest.raises(ConfigError, match="not a subclass of tuning_core.controller.Operation"):
        merge_components([ControllerComponents(operations={"X": dict})])


def test_controller_that_never_ran_is_reported(run_controlled, caplog):
    caplog.set_level(logging.WARNING, logger="tuning_core.controller")
    trainer, callback = run_controlled(
        """
controller_metrics:
  - name: training_loss
    class: Loss
controllers:
  - name: typo_key
    triggers: [on_log]
    rule: training_loss["los"] < 1.0
    operations: [hfcontrols.should_training_stop]
""",
        max_steps=2,
    )
    assert trainer.state.global_step == 2 and callback.firings == []
    (warning,) = [r.getMessage() for r in caplog.records if "never ran" in r.getMessage()]
    assert "'typo_key'" in warning and "no key 'los'" in warning


def test_metric_can_refuse_training_arguments():
    from types import SimpleNamespace

    from tuning_core.controller import plan_from_dict

    class NeedsEval(MetricHandler):
        events = ("on_evaluate",)

        def check(self, training_args):
            if training_args.eval_strategy == "no":
                raise ValueError("needs --eval_strategy steps or epoch")

    components = merge_components([ControllerComponents(metrics={"NeedsEval": NeedsEval})])
    plan = plan_from_dict(
        {
            "controller_metrics": [{"name": "m", "class": "NeedsEval"}],
            "controllers": [
                {"name": "c", "triggers": ["on_evaluate"], "rule": "m == None", "operations": ["hfcontrols.should_log"]}
            ],
        },
        components,
        source="x.yaml",
    )
    plan.check_training_args(SimpleNamespace(eval_strategy="steps"))
    with pytest.raises(ConfigError, match="x.yaml: metric 'm': needs --eval_strategy"):
        plan.check_training_args(SimpleNamespace(eval_strategy="no"))
