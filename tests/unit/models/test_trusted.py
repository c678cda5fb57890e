"""models.trusted: frozen attrs models built from checked values, without validators."""

from __future__ import annotations

import threading
from decimal import Decimal

import attrs
import pytest

from ketacds.models.inputs import Coding, Condition, Medication, Quantity
from ketacds.models.results import Finding, Firing
from ketacds.models.trusted import trusted_constructor


def test_builds_an_equal_instance_of_the_same_class() -> None:
    build = trusted_constructor(Quantity)
    built = build(Decimal("70"), "kg", None)
    assert type(built) is Quantity
    assert built == Quantity(value=Decimal("70"), unit="kg")
    assert hash(built) == hash(Quantity(value=Decimal("70"), unit="kg"))
    assert repr(built) == repr(Quantity(value=Decimal("70"), unit="kg"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.unit = "g"  # type: ignore[misc]


def test_runs_the_checks_across_fields() -> None:
    build = trusted_constructor(Condition)
    with pytest.raises(ValueError, match="Condition needs a code or a name"):
        build(None, None, None, "active", None)
    with pytest.raises(ValueError, match="a medication dose needs a unit"):
        trusted_constructor(Medication)(None, None, "x", Decimal(1), None, None, False, "active")


def test_refuses_a_class_with_a_converter_or_not_frozen() -> None:
    with pytest.raises(TypeError, match="converts"):
        trusted_constructor(Coding)

    @attrs.define
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="not a frozen"):
        trusted_constructor(Mutable)


def test_validators_stay_on_for_everyone_else() -> None:
    # Nothing process-wide is switched off: the class's own __init__ still validates,
    # in this thread and in another one.
    trusted_constructor(Quantity)(Decimal("1"), "kg", None)
    errors: list[Exception] = []

    def construct() -> None:
        try:
            Quantity(value="1", unit="kg")  # type: ignore[arg-type]
        except TypeError as error:
            errors.append(error)

    construct()
    thread = threading.Thread(target=construct)
    thread.start()
    thread.join()
    assert len(errors) == 2


def test_field_orders_the_assembler_relies_on() -> None:
    # engine/assemble.py passes a rule's cached Finding parts positionally.
    assert [a.name for a in attrs.fields(Finding)] == [
        "rule_id", "category", "severity", "title", "message", "management",
        "evidence", "confidence", "advisory", "basis", "group",
    ]  # fmt: skip
    assert [a.name for a in attrs.fields(Firing)] == ["rule_id", "facts", "derived"]
