"""A small, safe evaluator for trainer-controller rules.

Rules are Python-like expressions over metric values, e.g.
``training_loss["loss"] < 1.0 and trainer_state["epoch"] >= 2``. They are
parsed with ``ast`` and walked by this module only: no ``eval``/``exec``, no
calls except a fixed set of pure functions, no attribute access except
dictionary-key shorthand on metric dicts, nothing starting with ``_``.
"""

from __future__ import annotations

import ast
import operator
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_RULE_LENGTH = 2000
MAX_NODES = 500
MAX_POWER_EXPONENT = 64  # keeps 10**10**10 style rules from hanging training
MAX_INT_BITS = 4096


class RuleSyntaxError(ValueError):
    """The rule text is not an allowed expression (found when compiling)."""


class RuleRuntimeError(ValueError):
    """The rule cannot be evaluated with the values it was given (wrong types, non-boolean result)."""


class MetricUnavailable(Exception):
    """A value the rule needs does not exist yet (metric not computed, key or index missing).

    The controller skips the rule for this event instead of failing training.
    """


def _safe_len(x):
    if not hasattr(x, "__len__"):
        raise TypeError(f"len() of a {type(x).__name__}")
    return len(x)


def _numbers(values):
    values = list(values)
    for v in values:
        if not isinstance(v, (int, float)):
            raise TypeError(f"expected numbers, got a {type(v).__name__}")
    return values


def _safe_sum(values, start=0):
    return sum(_numbers(values), start)


def _safe_round(x, ndigits=None):
    return round(x) if ndigits is None else round(x, ndigits)


FUNCTIONS = {
    "len": _safe_len,
    "abs": abs,
    "min": min,
    "max": max,
    "sum": _safe_sum,
    "round": _safe_round,
    "float": float,
    "int": int,
}

CONSTANT_NAMES = {"True": True, "False": False, "None": None}

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}

# Node types a rule may contain; everything else (calls to arbitrary names,
# lambdas, comprehensions, walrus, f-strings, ...) is rejected at compile time.
_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Subscript,
    ast.Slice,
    ast.Attribute,
    ast.Call,
    ast.List,
    ast.Tuple,
    ast.IfExp,
    *_BINOPS,
    *_CMPOPS,
    *_UNARY,
)


class _Unavailable:
    """Stands for a metric that has not been computed yet."""

    def __init__(self, name: str):
        self.name = name

    def fail(self):
        raise MetricUnavailable(f"metric '{self.name}' has no value yet")


@dataclass(frozen=True)
class CompiledRule:
    """A parsed, checked rule; ``names`` are the metric names it reads."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """Evaluate against ``values`` (metric name -> value, ``None`` = not computed yet).

        Raises MetricUnavailable when a needed value does not exist yet and
        RuleRuntimeError when the rule is ill-typed or not a condition.
        """
        result = _Evaluator(values).eval(self.tree.body)
        if isinstance(result, _Unavailable):
            result.fail()
        if type(result).__name__ == "bool_":  # numpy bool from a metric value
            result = bool(result)
        if not isinstance(result, bool):
            raise RuleRuntimeError(f"the rule must be True or False, but it gave {result!r}")
        return result


def compile_rule(text: Any) -> CompiledRule:
    """Parse and check a rule; raise RuleSyntaxError with a readable reason."""
    if isinstance(text, bool):
        text = str(text)  # YAML `rule: True` parses to a bool
    if not isinstance(text, str) or not text.strip():
        raise RuleSyntaxError("the rule must be a non-empty expression string")
    if len(text) > MAX_RULE_LENGTH:
        raise RuleSyntaxError(f"the rule is longer than {MAX_RULE_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise RuleSyntaxError(f"invalid syntax in rule {text!r}: {e.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise RuleSyntaxError(f"the rule is too complex (more than {MAX_NODES} parts)")
    names: set[str] = set()
    for node in nodes:
        if not isinstance(node, _ALLOWED_NODES):
            raise RuleSyntaxError(f"{_describe(node)} is not allowed in a rule")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise RuleSyntaxError(f"the name '{node.id}' is not allowed (names may not start with '_')")
            if node.id not in CONSTANT_NAMES and node.id not in FUNCTIONS:
                names.add(node.id)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise RuleSyntaxError(f"access to '{node.attr}' is not allowed (names may not start with '_')")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise RuleSyntaxError(f"only these functions may be called in a rule: {', '.join(sorted(FUNCTIONS))}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise RuleSyntaxError(f"{node.func.id}() takes plain positional arguments in a rule")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool, type(None))):
                raise RuleSyntaxError(f"the constant {node.value!r} is not allowed in a rule")
    # A bare name used as a function value (e.g. `len < 3`) is caught here.
    for node in nodes:
        if isinstance(node, ast.Name) and node.id in FUNCTIONS and not _is_call_target(node, nodes):
            raise RuleSyntaxError(f"'{node.id}' can only be called, e.g. {node.id}(...)")
    body = tree.body
    if isinstance(body, ast.BinOp) or (isinstance(body, ast.Constant) and not isinstance(body.value, bool)):
        raise RuleSyntaxError(f"the rule {text!r} is not a condition (it must give True or False)")
    return CompiledRule(text=text, tree=tree, names=frozenset(names))


def _is_call_target(name: ast.Name, nodes) -> bool:
    return any(isinstance(n, ast.Call) and n.func is name for n in nodes)


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.NamedExpr: "':='",
        ast.JoinedStr: "an f-string",
        ast.Dict: "a dict literal",
        ast.Set: "a set literal",
        ast.Starred: "'*'",
        ast.Await: "await",
    }
    for kind, words in kinds.items():
        if isinstance(node, kind):
            return words
    return f"'{type(node).__name__}'"


class _Evaluator:
    def __init__(self, values: Mapping[str, Any]):
        self.values = values

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _value(self, node: ast.AST) -> Any:
        """Evaluate a node whose value is used (anything but a None check): unavailable fails."""
        v = self.eval(node)
        if isinstance(v, _Unavailable):
            v.fail()
        return v

    def _Constant(self, node):
        return node.value

    def _Name(self, node):
        if node.id in CONSTANT_NAMES:
            return CONSTANT_NAMES[node.id]
        if node.id not in self.values:
            raise MetricUnavailable(f"'{node.id}' is not a known metric")
        v = self.values[node.id]
        return _Unavailable(node.id) if v is None else v

    def _List(self, node):
        return [self._value(e) for e in node.elts]

    def _Tuple(self, node):
        return tuple(self._value(e) for e in node.elts)

    def _BoolOp(self, node):
        is_and = isinstance(node.op, ast.And)
        result = None
        for operand in node.values:
            result = self._value(operand)
            if bool(result) != is_and:  # short-circuit like Python
                return result
        return result

    def _UnaryOp(self, node):
        operand = self._value(node.operand)
        if not isinstance(node.op, ast.Not):
            _require_number(operand)
        return _UNARY[type(node.op)](operand)

    def _BinOp(self, node):
        left, right = self._value(node.left), self._value(node.right)
        _require_number(left)
        _require_number(right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER_EXPONENT:
            raise RuleRuntimeError(f"exponent {right} is too large in a rule (limit {MAX_POWER_EXPONENT})")
        try:
            result = _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise RuleRuntimeError("division by zero in the rule") from None
        except OverflowError:
            raise RuleRuntimeError("a number in the rule overflowed") from None
        if isinstance(result, complex):
            raise RuleRuntimeError("the rule produced a complex number")
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise RuleRuntimeError("a number in the rule is too large")
        return result

    def _Compare(self, node):
        left = self.eval(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=False):
            right = self.eval(right_node)
            if not self._compare(op, left, right):
                return False
            left = right
        return True

    def _compare(self, op, left, right) -> bool:
        # `metric == None` / `metric is None` ask "computed yet?", so they do not skip the rule.
        none_check = isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot))
        if none_check and (left is None or right is None):
            left_none = left is None or isinstance(left, _Unavailable)
            right_none = right is None or isinstance(right, _Unavailable)
            same = left_none and right_none
            return same if isinstance(op, (ast.Eq, ast.Is)) else not same
        for side in (left, right):
            if isinstance(side, _Unavailable):
                side.fail()
        try:
            return bool(_CMPOPS[type(op)](left, right))
        except TypeError as e:
            raise RuleRuntimeError(f"cannot compare {_kind(left)} with {_kind(right)} ({e})") from None

    def _IfExp(self, node):
        return self._value(node.body) if self._value(node.test) else self._value(node.orelse)

    def _Subscript(self, node):
        container = self._value(node.value)
        key = self._value(node.slice)
        if isinstance(key, slice):
            if isinstance(container, Mapping) or not isinstance(container, (Sequence, deque)):
                raise RuleRuntimeError(f"cannot slice {_kind(container)}")
            return list(container)[key] if isinstance(container, deque) else container[key]
        return _lookup(container, key)

    def _Slice(self, node):
        parts = [None if p is None else self._value(p) for p in (node.lower, node.upper, node.step)]
        for p in parts:
            if p is not None and not isinstance(p, int):
                raise RuleRuntimeError("slice bounds must be integers")
        return slice(*parts)

    def _Attribute(self, node):
        # `metric.key` is shorthand for `metric["key"]` on metric dicts (as in fms-hf-tuning rules).
        container = self._value(node.value)
        if not isinstance(container, Mapping):
            raise RuleRuntimeError(f"'.{node.attr}' only works on dictionaries, not on {_kind(container)}")
        return _lookup(container, node.attr)

    def _Call(self, node):
        args = [self._value(a) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as e:
            raise RuleRuntimeError(f"{node.func.id}() failed: {e}") from None


def _lookup(container, key):
    if isinstance(container, Mapping):
        if key not in container:
            raise MetricUnavailable(f"no key {key!r} (yet); available: {sorted(map(str, container))}")
        return container[key]
    if isinstance(container, (str, bytes)) or not hasattr(container, "__getitem__"):
        raise RuleRuntimeError(f"cannot index {_kind(container)}")
    if not isinstance(key, int) or isinstance(key, bool):
        raise RuleRuntimeError(f"a list index must be an integer, not {key!r}")
    try:
        return container[key]
    except IndexError:
        raise MetricUnavailable(f"index {key} is out of range (the list has {len(container)} items)") from None


def _require_number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if type(v).__name__ in ("float64", "float32", "int64", "int32"):  # numpy scalars from metrics
            return
        raise RuleRuntimeError(f"arithmetic needs numbers, got {_kind(v)}")


def _kind(v) -> str:
    if isinstance(v, _Unavailable):
        return f"unavailable metric '{v.name}'"
    return f"{type(v).__name__} {v!r}" if isinstance(v, (int, float, str, type(None))) else type(v).__name__
