"""The first dosage of a medication: dose, administrations per day, as needed."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.timing import Timing

from ketacds import limits
from ketacds.adapters.fhir.reading import ReaderBase
from ketacds.adapters.fhir.tables import UCUM
from ketacds.dosing.units import canonical_unit
from ketacds.errors import KetacdsError

# Days in each FHIR Timing.periodUnit (UCUM: mo is the mean Julian month, a the Julian year).
_PERIOD_DAYS = {
    "s": Fraction(1, 86400),
    "min": Fraction(1, 1440),
    "h": Fraction(1, 24),
    "d": Fraction(1),
    "wk": Fraction(7),
    "mo": Fraction("30.4375"),
    "a": Fraction("365.25"),
}
_RATE_PLACES = Decimal("0.0001")


class DosageReading(ReaderBase):
    """Reads a Dosage's dose and frequency."""

    def _dose_and_timing(
        self, key: str, dosage: Dosage | None, current: bool
    ) -> tuple[tuple[Decimal, str | None] | None, Fraction | None, bool]:
        if dosage is None:
            return None, None, False
        as_needed = bool(dosage.asNeededBoolean) or dosage.asNeededCodeableConcept is not None
        dose: tuple[Decimal, str | None] | None = None
        for rate in dosage.doseAndRate or []:
            quantity = rate.doseQuantity
            if quantity is None and rate.doseRange is not None and rate.doseRange.high is not None:
                quantity = rate.doseRange.high
                if current:
                    self.issue(
                        "warning",
                        "dose-range",
                        "A dose range is ordered; its upper end is read.",
                        key,
                        "doseRange",
                    )
            if quantity is not None and quantity.value is not None:
                unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
                dose = (quantity.value, unit)
                break
        return dose, self._frequency(key, dosage, current), as_needed

    def _frequency(self, key: str, dosage: Dosage, current: bool) -> Fraction | None:
        """Administrations per day, exactly (twice weekly is 2/7): from the repeat, else the timing code."""
        timing = dosage.timing
        if timing is None:
            return None
        repeat = timing.repeat
        if repeat is not None and repeat.period is not None and repeat.periodUnit in _PERIOD_DAYS:
            rate, problem = _repeat_rate(repeat.period, repeat.frequency, _PERIOD_DAYS[repeat.periodUnit])
            if rate is not None:
                return rate
            if problem is not None:
                self.issue(
                    "warning",
                    "frequency-not-read",
                    f"The timing cannot be read as a number per day: {problem}.",
                    key,
                    "dosage.timing",
                )
                return None
        per_day = self._timing_code_rate(timing)
        if per_day is not None:
            return per_day
        if current and (repeat is not None or timing.code is not None):
            self.issue(
                "warning",
                "frequency-not-read",
                "The timing cannot be read as a number per day.",
                key,
                "dosage.timing",
            )
        return None

    def _timing_code_rate(self, timing: Timing) -> Fraction | None:
        """Administrations per day of the timing's first code, if the tables know it (BID: 2)."""
        codes = [c.code for c in (timing.code.coding or [] if timing.code else []) if c.code]
        code = codes[0] if codes else None
        if code is not None and code.upper() in self.mapping.timing:
            count, per_days = self.mapping.timing[code.upper()]
            return Fraction(count, per_days)
        return None


def _repeat_rate(
    period: Decimal, frequency: int | None, unit_days: Fraction
) -> tuple[Fraction | None, str | None]:
    """``(administrations per day, None)`` of ``frequency`` per ``period``, or ``(None, the problem)``.

    ``unit_days``: the days in one of the period's units. ``(None, None)`` when the
    period is not positive (then the timing code is read).
    """
    return _rate_of(str(period), str(frequency or 1), unit_days)


@functools.lru_cache(maxsize=512)
def _rate_of(period: str, frequency: str, unit_days: Fraction) -> tuple[Fraction | None, str | None]:
    """:func:`_repeat_rate` of the period and frequency as written (the same few recur: "2 per 1 wk")."""
    given = [Decimal(period), Decimal(frequency)]
    problem = next(filter(None, map(limits.number_problem, given)), None)
    days = Fraction(given[0]) * unit_days if problem is None else Fraction(0)
    if days > 0:
        rate = Fraction(given[1]) / days
        # a period of 1e-27 days is 10^27 a day: past the number limits, never a dose rate
        problem = limits.number_problem(Decimal(rate.numerator) / Decimal(rate.denominator))
        if problem is None:
            return rate, None
    return None, problem


def first_dosage(dosages: Sequence[Dosage] | None) -> Dosage | None:
    """The dosage read: the first by ``sequence`` (none given counts as 0)."""
    if not dosages:
        return None
    return sorted(dosages, key=lambda d: d.sequence if d.sequence is not None else 0)[0]


def rate_decimal(value: Fraction) -> Decimal:
    """A rate as a Decimal: exact when it has a finite decimal form, else to 4 places."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    if exact * value.denominator == value.numerator:
        return exact.normalize() if exact != exact.to_integral_value() else exact.quantize(Decimal(1))
    return exact.quantize(_RATE_PLACES, ROUND_HALF_EVEN)


def is_mass(unit: str) -> bool:
    """Whether ``unit`` is a mass unit (mg, g, mcg, ...)."""
    try:
        canonical_unit(unit, "mass")
    except KetacdsError:
        return False
    return True
