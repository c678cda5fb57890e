"""The linter's reading of tests as sets of values agrees with checking every value by hand."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given

from ketacds.ruleset import ir
from ketacds.ruleset.logic import space
from strategies import NUMBER_GRID, number_tests


def passes(value: Decimal | None, tests: list[ir.Test]) -> bool:
    """Whether a value (None: unknown) passes every test, by the rules of docs/ruleset-format.md."""
    for test in tests:
        if test.op == "present":
            if (value is not None) != test.value:
                return False
            continue
        if value is None:
            return False  # every comparison is false on an unknown field
        if not _compare(value, test.op, test.value):
            return False
    return True


def _compare(value: Decimal, op: str, operand: object) -> bool:
    if op == "in":
        assert isinstance(operand, tuple)
        return value in operand
    assert isinstance(operand, int)
    return {
        "eq": value == operand,
        "ne": value != operand,
        "gt": value > operand,
        "gte": value >= operand,
        "lt": value < operand,
        "lte": value <= operand,
    }[op]


@given(tests=number_tests)
def test_empty_means_no_value_passes(tests):
    """A space is empty exactly when no value (nor unknown) passes every test."""
    assert space("number", tests).empty == (not any(passes(v, tests) for v in NUMBER_GRID))


@given(tests=number_tests)
def test_admits_agrees_with_the_tests(tests):
    """A known value is admitted exactly when it passes every test."""
    s = space("number", tests)

    assert [passes(v, tests) for v in NUMBER_GRID[1:]] == [s.admits(v) for v in NUMBER_GRID[1:]]
    assert passes(None, tests) == s.admits_unknown()


@given(mine=number_tests, theirs=number_tests)
def test_within_is_sound(mine, theirs):
    """When one space is within another, every value passing the first passes the second."""
    if space("number", mine).within(space("number", theirs)):
        assert all(passes(v, theirs) for v in NUMBER_GRID if passes(v, mine))
