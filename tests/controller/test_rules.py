"""The rule evaluator: what it computes, what it refuses, and how missing values behave."""

import pytest

from tuning_core.controller.rules import MetricUnavailable, RuleRuntimeError, RuleSyntaxError, compile_rule

WINDOW = {
    "training_loss": {"loss": [3.0, 2.5, 2.7], "steps": [1, 2, 3], "epoch": [0.1, 0.2, 0.3]},
    "metrics": {},
    "window_size": 3,
}


def ev(text, **values):
    return compile_rule(text).evaluate(values)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("loss < 1.0", False),
        ("loss >= 2 and step % 5 == 0", True),
        ("not (loss > 2) or step == 10", True),
        ("1 < loss < 3", True),
        ("abs(loss - 2.5) <= 0.0001", True),
        ("(loss * 2 + 1) / 3 == 2.0", True),
        ("loss ** 2 > 6", True),
        ("step // 3 == 3", True),
        ("-loss < 0", True),
        ("w['training_loss']['loss'][-1] > w['training_loss']['loss'][0]", False),
        ("w['training_loss']['loss'][-1] > min(w['training_loss']['loss'][:-1])", True),
        ("len(w['training_loss']['loss']) == w['window_size']", True),
        ("sum(w['training_loss']['loss']) / len(w['training_loss']['loss']) > 2.7", True),
        ("max(w['training_loss']['loss'][1:]) == 2.7", True),
        ("w.training_loss.loss[0] == 3.0", True),  # dict-key shorthand, as fms-hf-tuning rules allow
        ("'loss' in w['training_loss']", True),
        ("step in [1, 2, 10]", True),
        ("True", True),
        ("loss if step > 5 else 0", None),  # non-bool: checked below
    ],
)
def test_evaluates_like_python(text, expected):
    values = {"loss": 2.5, "step": 10, "w": WINDOW}
    if expected is None:
        with pytest.raises(RuleRuntimeError, match="must be True or False"):
            ev(text, **values)
    else:
        assert ev(text, **values) is expected


def test_bool_rule_from_yaml_is_accepted():
    assert compile_rule(True).evaluate({}) is True


def test_names_are_the_metrics_read():
    rule = compile_rule("len(a['x']) > 0 and b < max(c, 1) and d is None")
    assert rule.names == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    "text,reason",
    [
        ("__import__('os').system('true')", "only these functions"),
        ("loss.__class__", "not allowed"),
        ("loss._private", "not allowed"),
        ("_hidden > 1", "not allowed"),
        ("input('password')", "only these functions"),
        ("open('/etc/passwd')", "only these functions"),
        ("loss.bit_length() > 1", "only these functions"),
        ("[x for x in loss]", "comprehension"),
        ("(lambda: 1)() == 1", "lambda|only these functions"),
        ("{1: 2}[1] == 2", "dict literal"),
        ("f'{loss}' == '1'", "f-string"),
        ("(x := 1) == 1", "':='"),
        ("2 + 2", "not a condition"),
        ("4", "not a condition"),
        ("len < 3", "can only be called"),
        ("max(*loss) > 1", "positional"),
        ("loss >", "invalid syntax"),
        ("", "non-empty"),
        ("x == 1; import os", "invalid syntax"),
        ("b'x' == 1", "not allowed"),
    ],
)
def test_refuses_unsafe_or_malformed_rules(text, reason):
    with pytest.raises(RuleSyntaxError, match=reason):
        compile_rule(text)


def test_refuses_huge_rules():
    with pytest.raises(RuleSyntaxError, match="longer than"):
        compile_rule("x == 1 or " * 400 + "x == 2")


def test_large_powers_are_refused_at_run_time():
    with pytest.raises(RuleRuntimeError, match="exponent"):
        ev("9 ** x > 1", x=10**6)
    with pytest.raises(RuleRuntimeError, match="too large"):
        ev("(10 ** 60) ** 60 * (10 ** 60) ** 60 > 1")


def test_string_repetition_is_not_arithmetic():
    with pytest.raises(RuleRuntimeError, match="arithmetic needs numbers"):
        ev("'a' * 1000000000 == 'a'")


def test_unavailable_metric_skips_but_none_checks_work():
    assert ev("loss == None", loss=None) is True
    assert ev("loss != None", loss=None) is False
    assert ev("loss is not None", loss={"loss": 1.0}) is True
    assert ev("loss is None or loss['loss'] < 2", loss=None) is True
    for text in ("loss['loss'] < 1", "loss < 1", "not loss", "len(loss) > 0"):
        with pytest.raises(MetricUnavailable):
            ev(text, loss=None)


def test_missing_keys_and_indices_are_unavailable_not_errors():
    with pytest.raises(MetricUnavailable, match="eval_loss"):
        ev("w['metrics']['eval_loss'][-1] > 1", w=WINDOW)
    with pytest.raises(MetricUnavailable, match="out of range"):
        ev("w['training_loss']['loss'][7] > 1", w=WINDOW)
    # Short-circuit guards work as in Python.
    assert ev("len(w['metrics']) > 0 and w['metrics']['eval_loss'][-1] > 1", w=WINDOW) is False


def test_type_errors_are_reported():
    with pytest.raises(RuleRuntimeError, match="cannot compare"):
        ev("loss < 'high'", loss=1.0)
    with pytest.raises(RuleRuntimeError, match="division by zero"):
        ev("loss / 0 > 1", loss=1.0)
    with pytest.raises(RuleRuntimeError, match="only works on dictionaries"):
        ev("loss.real > 1", loss=1.0)
