"""What it means for one fact to match one pattern (the semantics of field tests).

Shared by the reference evaluator and by the absence markers that stand in for
``not`` in the durable_rules backend. A test on a field the fact does not have is
false, except ``present: false``, which is exactly that case.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ketacds.ruleset.ir import Pattern, Ref, Scalar, Test

__all__ = ["matches", "operand_value", "passes"]


def operand_value(value: Scalar | tuple[Scalar, ...] | Ref, env: Mapping[str, Mapping[str, Any]]) -> Any:
    """Resolve a test's operand: a constant, or a field of a fact bound earlier."""
    if isinstance(value, Ref):
        return env[value.alias].get(value.field)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, tuple):
        return tuple(float(v) if isinstance(v, Decimal) else v for v in value)
    return value


def _same_kind(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return True
    return type(a) is type(b)


def passes(test: Test, fact: Mapping[str, Any], env: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether one field test holds for ``fact`` (used by explanations to judge tests one by one)."""
    if test.op == "present":
        return (test.field in fact) == bool(test.value)
    if test.field not in fact:
        return False
    actual = fact[test.field]
    expected = operand_value(test.value, env)
    if test.op == "member":
        return any(vs in actual for vs in expected)
    if test.op == "in":
        return any(_same_kind(actual, e) and actual == e for e in expected)
    if expected is None or not _same_kind(actual, expected):
        return test.op == "ne" and expected is not None
    if test.op == "eq":
        return bool(actual == expected)
    if test.op == "ne":
        return bool(actual != expected)
    if test.op == "gt":
        return bool(actual > expected)
    if test.op == "gte":
        return bool(actual >= expected)
    if test.op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def matches(pattern: Pattern, fact: Mapping[str, Any], env: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``fact`` is of the pattern's type and passes all its tests."""
    return fact.get("t") == pattern.fact and all(passes(t, fact, env) for t in pattern.tests)
