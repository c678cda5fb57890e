"""Units of measure: exact conversion with :class:`~decimal.Decimal`, no float drift.

Only the units ketacds needs are known; anything else raises
:class:`~ketacds.errors.TerminologyError` rather than being guessed at.
UCUM spellings (``[lb_av]``, ``[in_i]``, ``mm[Hg]``) are accepted beside the
everyday ones (``lb``, ``in``, ``mmHg``).
"""

from __future__ import annotations

from decimal import Decimal

from ketacds.errors import TerminologyError

__all__ = ["DIMENSIONS", "canonical_unit", "convert", "dimension_of"]

# Each unit: (dimension, factor to the dimension's base unit). Exact by definition:
# 1 lb = 0.45359237 kg (international avoirdupois pound), 1 in = 2.54 cm.
_UNITS: dict[str, tuple[str, Decimal]] = {
    "mg": ("mass", Decimal(1)),
    "mcg": ("mass", Decimal("0.001")),
    "g": ("mass", Decimal(1000)),
    "kg": ("mass", Decimal(1000000)),
    "lb": ("mass", Decimal("453592.37")),
    "cm": ("length", Decimal(1)),
    "m": ("length", Decimal(100)),
    "mm": ("length", Decimal("0.1")),
    "in": ("length", Decimal("2.54")),
    "mmHg": ("pressure", Decimal(1)),
    "/min": ("rate", Decimal(1)),
    "%": ("fraction", Decimal(1)),
    "kg/m2": ("bmi", Decimal(1)),
    "score": ("score", Decimal(1)),
}

_ALIASES: dict[str, str] = {
    "kilogram": "kg",
    "kilograms": "kg",
    "gram": "g",
    "[lb_av]": "lb",
    "lbs": "lb",
    "pound": "lb",
    "pounds": "lb",
    "[in_i]": "in",
    "inch": "in",
    "inches": "in",
    "centimetre": "cm",
    "centimeter": "cm",
    "metre": "m",
    "meter": "m",
    "milligram": "mg",
    "milligrams": "mg",
    "ug": "mcg",
    "µg": "mcg",
    "microgram": "mcg",
    "micrograms": "mcg",
    "mm[hg]": "mmHg",
    "mmhg": "mmHg",
    "mm hg": "mmHg",
    "beats/min": "/min",
    "bpm": "/min",
    "{beats}/min": "/min",
    "1/min": "/min",
    "percent": "%",
    "kg/m^2": "kg/m2",
    "kg/m²": "kg/m2",
    "{score}": "score",
    "1": "score",
}

#: Base unit of each dimension.
DIMENSIONS: dict[str, str] = {
    "mass": "mg",
    "length": "cm",
    "pressure": "mmHg",
    "rate": "/min",
    "fraction": "%",
    "bmi": "kg/m2",
    "score": "score",
}


def canonical_unit(unit: str, dimension: str | None = None) -> str:
    """Return the canonical spelling of ``unit``.

    Args:
        unit: a unit as written in the input (``"[lb_av]"``, ``"lbs"``, ``"kg"``).
        dimension: when given, the unit must measure this (``"mass"``, ``"length"``, ...).

    Raises:
        TerminologyError: the unit is unknown or measures something else.
    """
    if unit.__class__ is str:
        known = _CANONICAL.get((unit, dimension))
        if known is not None:
            return known
    key = unit.strip()
    name = key if key in _UNITS else _ALIASES.get(key.lower(), key.lower())
    if name not in _UNITS:
        raise TerminologyError(f"unknown unit {unit!r}")
    if dimension is not None and _UNITS[name][0] != dimension:
        raise TerminologyError(f"unit {unit!r} does not measure {dimension}")
    if unit.__class__ is str and len(_CANONICAL) < _CANONICAL_SIZE:
        _CANONICAL[(unit, dimension)] = name
    return name


#: The spellings :func:`canonical_unit` has read, with their answer (only units it knows:
#: an unknown one raises every time). Filled up to ``_CANONICAL_SIZE`` entries, then
#: only read, so memory stays bounded; setting a key in a dict is safe between threads.
_CANONICAL: dict[tuple[str, str | None], str] = {}
_CANONICAL_SIZE = 1024


def dimension_of(unit: str) -> str:
    """Return the dimension (``"mass"``, ``"length"``, ...) that ``unit`` measures."""
    return _UNITS[canonical_unit(unit)][0]


def convert(value: Decimal, unit: str, to: str) -> Decimal:
    """Convert ``value`` from ``unit`` to the unit ``to``, exactly.

    Raises:
        TerminologyError: either unit is unknown, or they measure different things.

    >>> convert(Decimal("154"), "[lb_av]", "kg")
    Decimal('69.85322498')
    """
    factors = _FACTORS.get((unit, to)) if unit.__class__ is str and to.__class__ is str else None
    if factors is None:
        factors = _factors(unit, to)
    result = value * factors[0] / factors[1]
    if result == result.to_integral_value():  # drop trailing zeros without exponent notation
        return result.quantize(_ONE)
    return result.normalize()


def _factors(unit: str, to: str) -> tuple[Decimal, Decimal]:
    """The factors :func:`convert` multiplies by and divides by (remembered, for known units)."""
    target = canonical_unit(to)
    dimension, target_factor = _UNITS[target]
    factors = (_UNITS[canonical_unit(unit, dimension)][1], target_factor)
    if unit.__class__ is str and to.__class__ is str and len(_FACTORS) < _CANONICAL_SIZE:
        _FACTORS[(unit, to)] = factors
    return factors


#: The factors of every (unit, to) :func:`convert` has read (only known units: an unknown
#: one raises every time). Bounded like ``_CANONICAL``; the values are immutable.
_FACTORS: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
_ONE = Decimal(1)
