"""Exact unit conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketacds import TerminologyError
from ketacds.dosing.units import canonical_unit, convert


@pytest.mark.parametrize(
    ("value", "unit", "to", "expected"),
    [
        ("154", "[lb_av]", "kg", "69.85322498"),
        ("500", "mcg", "mg", "0.5"),
        ("70", "[in_i]", "cm", "177.8"),
        ("1.65", "m", "cm", "165"),
        ("70", "kg", "kg", "70"),
    ],
)
def test_known_conversions(value, unit, to, expected):
    """Conversions are exact decimals, written without exponents."""
    assert Decimal(expected) == convert(Decimal(value), unit, to)
    assert "E" not in str(convert(Decimal(value), unit, to))


@given(st.decimals(min_value=0, max_value=100000, places=3))
def test_mg_mcg_round_trip_is_exact(value):
    """mg to mcg and back returns the same number, with no float drift."""
    assert value == convert(convert(value, "mg", "mcg"), "mcg", "mg")


@pytest.mark.parametrize(("unit", "dimension"), [("stone", None), ("kg", "length"), ("mmHg", "mass")])
def test_unknown_or_wrong_units_are_errors(unit, dimension):
    """An unknown unit, or one that measures something else, is refused."""
    with pytest.raises(TerminologyError):
        canonical_unit(unit, dimension)


def test_canonical_unit_remembers_only_known_units_and_stays_bounded():
    """Asked twice, the same answer or the same error; the memory never outgrows its size."""
    from ketacds.dosing import units

    for _ in range(2):
        assert units.canonical_unit(" [lb_av] ") == "lb"
        assert units.canonical_unit("[lb_av]", "mass") == "lb"
        with pytest.raises(TerminologyError, match="does not measure length"):
            units.canonical_unit("[lb_av]", "length")
        with pytest.raises(TerminologyError, match="unknown unit"):
            units.canonical_unit("furlong")
    assert ("furlong", None) not in units._CANONICAL
    assert ("[lb_av]", "length") not in units._CANONICAL
    for n in range(units._CANONICAL_SIZE + 10):
        assert units.canonical_unit("kg" + " " * n) == "kg"
    assert len(units._CANONICAL) <= units._CANONICAL_SIZE


def test_convert_remembers_the_factors_of_known_units_only_and_stays_bounded():
    """Asked twice, the same exact answer or the same error; the memory never outgrows its size."""
    from decimal import Decimal

    from ketacds.dosing import units

    for _ in range(2):
        assert repr(units.convert(Decimal("154"), "[lb_av]", "kg")) == "Decimal('69.85322498')"
        assert repr(units.convert(Decimal("70.0"), "kg", "kg")) == "Decimal('70')"
        assert repr(units.convert(Decimal("0.50"), "g", "mg")) == "Decimal('500')"
        assert repr(units.convert(Decimal("0.50"), "mg", "mg")) == "Decimal('0.5')"
        with pytest.raises(TerminologyError, match="unknown unit"):
            units.convert(Decimal(1), "furlong", "mg")
        with pytest.raises(TerminologyError, match="does not measure mass"):
            units.convert(Decimal(1), "cm", "mg")
    assert ("furlong", "mg") not in units._FACTORS
    assert ("cm", "mg") not in units._FACTORS
    for n in range(units._CANONICAL_SIZE + 10):
        assert units.convert(Decimal(2), "g" + " " * n, "mg") == 2000
    assert len(units._FACTORS) <= units._CANONICAL_SIZE
