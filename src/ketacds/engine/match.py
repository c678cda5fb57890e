"""What it means for one fact to match one pattern (the semantics of field tests).

Shared by the reference evaluator, by the absence markers that stand in for
``not`` in the durable_rules backend, and by the boolean test properties that backend
sends instead of field values (``engine/backends/durable/capacity.py``, ``test_property``). A test on
a field the fact does not have is false, except ``present: false``, which is exactly
that case.

Numbers are compared exactly: a fact's number (int or Decimal) against the rule's
constant as written (int or Decimal), never through a float.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ketacds.ruleset.ir import Pattern, Ref, Scalar, Test

__all__ = ["compile_pattern", "compile_test", "matches", "operand_value", "passes"]


def operand_value(value: Scalar | tuple[Scalar, ...] | Ref, env: Mapping[str, Mapping[str, Any]]) -> Any:
    """Resolve a test's operand: a constant, or a field of a fact bound earlier."""
    if isinstance(value, Ref):
        return env[value.alias].get(value.field)
    return value


def _same_kind(a: Any, b: Any) -> bool:
    numeric = (int, float, Decimal)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return True
    return type(a) is type(b)


def passes(test: Test, fact: Mapping[str, Any], env: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether one field test holds on ``fact``; references are resolved in ``env``."""
    if test.op == "present":
        return (test.field in fact) == bool(test.value)
    if test.field not in fact:
        return False
    return _compare(test.op, fact[test.field], operand_value(test.value, env))


def _compare(op: str, actual: Any, expected: Any) -> bool:
    """Whether a known field value passes a test whose operand is resolved."""
    if op == "member":
        return any(vs in actual for vs in expected)
    if op == "in":
        return any(_same_kind(actual, e) and actual == e for e in expected)
    if op == "not_in":
        return all(not (_same_kind(actual, e) and actual == e) for e in expected)
    if expected is None or not _same_kind(actual, expected):
        return op == "ne" and expected is not None
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def matches(pattern: Pattern, fact: Mapping[str, Any], env: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``fact`` is of the pattern's type and passes all its tests."""
    return fact.get("t") == pattern.fact and all(passes(t, fact, env) for t in pattern.tests)


def compile_test(test: Test) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`passes` for one constant test, with its operand resolved once.

    Raises:
        ValueError: the test refers to another pattern's fact.
    """
    if isinstance(test.value, Ref):
        raise ValueError("a test with a reference depends on another fact and cannot be compiled alone")
    op, field, expected = test.op, test.field, test.value
    if op == "present":
        wanted = bool(expected)
        return lambda fact: (field in fact) == wanted
    # Fast paths for the common shapes (every fact of every assessment is checked against
    # every test of its type); each gives exactly what _compare gives.
    if op == "eq" and isinstance(expected, bool):
        return lambda fact: fact.get(field, _MISSING) is expected  # a bool equals only a bool
    if op == "eq" and isinstance(expected, str):
        return lambda fact: fact.get(field, _MISSING) == expected  # nothing but a str equals a str
    compare = _NUMERIC_OPS.get(op)
    if compare is not None and isinstance(expected, int | Decimal) and not isinstance(expected, bool):

        def numeric(fact: Mapping[str, Any]) -> bool:
            actual = fact.get(field, _MISSING)
            if actual.__class__ in _EXACT_NUMBERS:
                return bool(compare(actual, expected))
            return actual is not _MISSING and _compare(op, actual, expected)

        return numeric

    def check(fact: Mapping[str, Any]) -> bool:
        return field in fact and _compare(op, fact[field], expected)

    return check


_MISSING = object()
_EXACT_NUMBERS = (int, Decimal, float)  # exact classes: a bool is not a number here
_NUMERIC_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def compile_pattern(pattern: Pattern) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`matches` for a pattern without references, with its operands resolved once.

    For the absence markers, which test the facts of every assessment against every
    negated pattern. Same semantics as :func:`passes`: the comparison is shared.

    Raises:
        ValueError: the pattern refers to another pattern's fact.
    """
    if any(isinstance(test.value, Ref) for test in pattern.tests):
        raise ValueError("a pattern with references depends on other facts and cannot be compiled alone")
    kind = pattern.fact
    prepared = tuple(
        (test.op, test.field, test.value if test.op == "present" else operand_value(test.value, {}))
        for test in pattern.tests
    )

    def check(fact: Mapping[str, Any]) -> bool:
        if fact.get("t") != kind:
            return False
        for op, field, expected in prepared:
            if op == "present":
                if (field in fact) != bool(expected):
                    return False
            elif field not in fact or not _compare(op, fact[field], expected):
                return False
        return True

    return check
