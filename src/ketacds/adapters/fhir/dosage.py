"""A medication's dosage lines: dose, administrations per day, as needed.

Every line is read (:meth:`DosageReading._dose_and_timing`): lines of one ``sequence``
(none given counts as 0) are concurrent, so their doses are summed; lines of different
sequences follow each other, so the highest dose and the highest frequency any of them
gives are read, and said so when they differ. Within a timing, the highest frequency
it allows is read (``frequencyMax``, the days of ``dayOfWeek``, ``timeOfDay`` and
``when``, a ``code`` that gives more than the ``repeat``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from fhir.resources.R4B.dosage import Dosage, DosageDoseAndRate
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.timing import Timing, TimingRepeat

from ketacds import limits
from ketacds.adapters.fhir.reading import ReaderBase
from ketacds.adapters.fhir.tables import UCUM
from ketacds.dosing.units import canonical_unit
from ketacds.errors import KetacdsError
from ketacds.models.quality import QualitySeverity

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
_DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"

#: A dose (value, unit), or ``None``.
Dose = tuple[Decimal, str | None] | None


class DosageReading(ReaderBase):
    """Reads the dose and frequency of a medication's dosage lines.

    ``order``: the dosage is a drafted order's (the thing being signed): what cannot be
    read of it is an error, and its unread parts (text, maximum doses, rates) are said.
    """

    def _dose_and_timing(
        self, key: str, dosages: Sequence[Dosage] | None, current: bool, order: bool = False
    ) -> tuple[Dose, Fraction | None, bool]:
        """The dose per administration, administrations per day and as-needed of all the lines."""
        if not dosages:
            return None, None, False
        if len(dosages) == 1:  # the common case
            dose, per_day = self._line(key, dosages[0], current, order)
            return dose, per_day, _as_needed(dosages[0])
        groups: dict[int, list[Dosage]] = {}
        for dosage in dosages:
            groups.setdefault(dosage.sequence if dosage.sequence is not None else 0, []).append(dosage)
        read = [self._concurrent(key, lines, current, order) for _, lines in sorted(groups.items())]
        as_needed = any(_as_needed(d) for d in dosages)
        if len(read) == 1:
            return read[0][0], read[0][1], as_needed
        doses = {d for d, _ in read}
        rates = {r for _, r in read}
        dose = _highest_dose(list(doses))
        per_day = max((r for r in rates if r is not None), default=None)
        if len(doses) > 1 or len(rates) > 1:
            self.issue(
                _severity(order, current),
                "dosage-sequence",
                f"{len(read)} dosage lines follow each other (sequence) with different doses or "
                "frequencies; the highest of each is read"
                + (", but the order's dose and frequency are not one thing." if order else "."),
                key,
                "dosage",
            )
        return dose, per_day, as_needed

    def _concurrent(
        self, key: str, lines: list[Dosage], current: bool, order: bool
    ) -> tuple[Dose, Fraction | None]:
        """Lines given at the same time (one sequence): their doses summed, the highest frequency."""
        read = [self._line(key, line, current, order) for line in lines]
        if len(read) == 1:
            return read[0]
        doses = [d for d, _ in read if d is not None]
        rates = {r for _, r in read}
        per_day = max((r for r in rates if r is not None), default=None)
        units = {d[1] for d in doses}
        dose: Dose = None
        severity: QualitySeverity
        if len(doses) == len(read) and len(units) == 1:
            dose = (sum((d[0] for d in doses), Decimal(0)), units.pop())
        if not doses:
            problem = f"none gives a dose; the highest frequency, {_per_day_text(per_day)}, is read"
            severity = "warning" if current else "info"
        elif dose is None:
            problem, severity = (
                "their doses cannot be added (one is missing or in another unit), so none is read",
                _severity(order, current),
            )
        elif len(rates) > 1:
            problem = f"their doses are added and read at the highest frequency, {_per_day_text(per_day)}"
            severity = _severity(order, current)
        else:
            problem, severity = "their doses are added", "warning" if current else "info"
        self.issue(
            severity,
            "concurrent-dosage",
            f"{len(lines)} dosage lines are given at the same time (one sequence): {problem}.",
            key,
            "dosage",
        )
        return dose, per_day

    def _line(self, key: str, dosage: Dosage, current: bool, order: bool) -> tuple[Dose, Fraction | None]:
        """The dose and administrations per day of one dosage line."""
        dose = self._dose(key, dosage, current, order)
        per_day = self._frequency(key, dosage, current, order)
        if order:
            self._order_extras(key, dosage, dose, per_day)
        return dose, per_day

    def _dose(self, key: str, dosage: Dosage, current: bool, order: bool) -> Dose:
        """The dose of a line's doseAndRate entries: those typed "ordered" when some are."""
        entries = [
            e for e in dosage.doseAndRate or [] if e.doseQuantity is not None or e.doseRange is not None
        ]
        if len(entries) > 1:
            ordered = [e for e in entries if _rate_type(e) == "ordered"]
            entries = ordered or entries
        doses = [self._entry_dose(key, entry, current, order) for entry in entries]
        if len(doses) <= 1:
            return doses[0] if doses else None
        if len(set(doses)) > 1:
            self.issue(
                _severity(order, current),
                "several-doses",
                f"The dosage gives {len(doses)} different doses; the highest is read"
                + (", but the order's dose is not one thing." if order else "."),
                key,
                "dosage.doseAndRate",
            )
        return _highest_dose(doses)

    def _entry_dose(self, key: str, rate: DosageDoseAndRate, current: bool, order: bool) -> Dose:
        quantity: Quantity | None = rate.doseQuantity
        if quantity is None and rate.doseRange is not None:
            quantity = rate.doseRange.high
            if quantity is None:
                self.issue(
                    _severity(order, current),
                    "dose-range",
                    "A dose range without an upper end is ordered, so no dose is read.",
                    key,
                    "doseRange",
                )
                return None
            if current:
                self.issue(
                    "warning",
                    "dose-range",
                    "A dose range is ordered; its upper end is read.",
                    key,
                    "doseRange",
                )
        if quantity is None or quantity.value is None:
            return None
        if quantity.comparator is not None:
            bound = quantity.comparator in ("<", "<=")
            self.issue(
                _severity(order, current) if not bound else "warning",
                "dose-comparator",
                f"The dose is given as {quantity.comparator} {quantity.value}: "
                + ("its bound is read as the dose." if bound else "the dose is not known, so none is read."),
                key,
                "dosage.doseAndRate.doseQuantity.comparator",
            )
            if not bound:
                return None
        unit = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
        return quantity.value, unit

    def _order_extras(self, key: str, dosage: Dosage, dose: Dose, per_day: Fraction | None) -> None:
        """Say what an order's dosage gives that is not read: maximum doses, rates, free text, as needed."""
        if _as_needed(dosage):
            self.issue(
                "error",
                "as-needed",
                "The order is as needed (PRN); no ketamine or esketamine schedule is, and how often "
                "it may be given is not known.",
                key,
                "dosage.asNeeded",
            )
        for name in ("maxDosePerPeriod", "maxDosePerAdministration", "maxDosePerLifetime"):
            if getattr(dosage, name) is not None and not self._within(dosage, name, dose, per_day):
                self.issue(
                    "error" if name != "maxDosePerLifetime" else "warning",
                    "max-dose-not-read",
                    f"The order gives a {name}, which ketacds does not read: it may allow more than "
                    "the dose and frequency checked.",
                    key,
                    f"dosage.{name}",
                )
        if any(
            e.rateQuantity is not None or e.rateRange is not None or e.rateRatio is not None
            for e in dosage.doseAndRate or []
        ):
            self.issue("warning", "rate-not-read", "The order's rate is not read.", key, "dosage.doseAndRate")
        if dosage.text:
            self.issue(
                "warning",
                "dosage-text-not-read",
                f"The dosage text ({dosage.text!r}) is not read; only the structured dose and timing are.",
                key,
                "dosage.text",
            )

    def _within(self, dosage: Dosage, name: str, dose: Dose, per_day: Fraction | None) -> bool:
        """Whether a maximum dose allows no more than the dose (and frequency) read: then it adds nothing.

        Compared only when it is in the dose's own unit (and, per period, a time unit).
        """
        if dose is None:
            return False
        if name == "maxDosePerAdministration":
            limit = _amount(dosage.maxDosePerAdministration, dose[1])
            return limit is not None and limit <= dose[0]
        ratio = dosage.maxDosePerPeriod
        if name != "maxDosePerPeriod" or ratio is None or per_day is None:
            return False
        amount = _amount(ratio.numerator, dose[1])
        period = ratio.denominator
        unit = (period.code or period.unit) if period is not None else None
        if amount is None or period is None or period.value is None or unit not in _PERIOD_DAYS:
            return False
        days = Fraction(period.value) * _PERIOD_DAYS[unit]
        return days > 0 and Fraction(amount) / days <= Fraction(dose[0]) * per_day

    def _frequency(self, key: str, dosage: Dosage, current: bool, order: bool = False) -> Fraction | None:
        """Administrations per day, exactly (twice weekly is 2/7): the highest the timing allows."""
        timing = dosage.timing
        if timing is None:
            return None
        repeat = timing.repeat
        rates: list[tuple[str, Fraction]] = []
        if repeat is not None:
            found = self._repeat_frequency(key, repeat, order)
            if found is None:
                return None
            rates += found
        per_day = self._timing_code_rate(timing)
        if per_day is not None:
            rates.append(("code", per_day))
        if not rates:
            if current and (repeat is not None or timing.code is not None or timing.event):
                self.issue(
                    _severity(order),
                    "frequency-not-read",
                    "The timing cannot be read as a number per day.",
                    key,
                    "dosage.timing",
                )
            return None
        highest = max(rate for _, rate in rates)
        if current and len({rate for _, rate in rates}) > 1:
            parts = ", ".join(f"{name}: {_per_day_text(rate)}" for name, rate in rates)
            self.issue(
                "warning",
                "frequency-conflict",
                f"The timing's parts give different frequencies ({parts}); the highest, "
                f"{_per_day_text(highest)}, is read.",
                key,
                "dosage.timing",
            )
        return highest

    def _repeat_frequency(
        self, key: str, repeat: TimingRepeat, order: bool
    ) -> list[tuple[str, Fraction]] | None:
        """The frequencies a ``Timing.repeat`` gives (the most it allows), or ``None`` when unreadable.

        ``frequencyMax`` over ``frequency``; on the days of ``dayOfWeek``; as many a day
        as ``timeOfDay`` or ``when`` list when they list more than ``frequency``.
        """
        frequency = max(repeat.frequency or 1, repeat.frequencyMax or 0)
        rate: Fraction | None = None
        unit_days = _PERIOD_DAYS.get(repeat.periodUnit or "")
        if repeat.period is not None and unit_days is not None:
            rate, problem = _repeat_rate(repeat.period, frequency, unit_days)
            if rate is None and problem is not None:
                self.issue(
                    _severity(order),
                    "frequency-not-read",
                    f"The timing cannot be read as a number per day: {problem}.",
                    key,
                    "dosage.timing",
                )
                return None
        days = len(set(repeat.dayOfWeek or []))
        times = max(len(repeat.timeOfDay or []), len(repeat.when or []))
        if not days and not times:  # the common case
            return [("repeat", rate)] if rate is not None else []
        daily = rate is not None and unit_days is not None and Fraction(str(repeat.period)) * unit_days <= 1
        if days and daily and rate is not None:
            # so many a day (or at so many times), on these days of the week
            return [("repeat on its days of the week", max(rate, Fraction(times)) * days / 7)]
        rates = [("repeat", rate)] if rate is not None else []
        if days:
            rates.append(("dayOfWeek", Fraction(days * max(times, 1), 7)))
        elif rate is None:
            rates.append(("timeOfDay/when", Fraction(times)))
        elif times > frequency:
            rates.append(("timeOfDay/when", rate * times / frequency))
        return rates

    def _timing_code_rate(self, timing: Timing) -> Fraction | None:
        """Administrations per day of the timing's first code, if the tables know it (BID: 2)."""
        codes = [c.code for c in (timing.code.coding or [] if timing.code else []) if c.code]
        code = codes[0] if codes else None
        if code is not None and code.upper() in self.mapping.timing:
            count, per_days = self.mapping.timing[code.upper()]
            return Fraction(count, per_days)
        return None


def _severity(order: bool, current: bool = True) -> QualitySeverity:
    """What an unreadable part of a dosage is: an error (order), a warning (taken), else info."""
    return "error" if order else "warning" if current else "info"


def _as_needed(dosage: Dosage) -> bool:
    return bool(dosage.asNeededBoolean) or dosage.asNeededCodeableConcept is not None


def _rate_type(entry: DosageDoseAndRate) -> str | None:
    """The dose-rate type of an entry (ordered, calculated), if coded."""
    for coding in entry.type.coding or [] if entry.type else []:
        if coding.system == _DOSE_RATE_TYPE and coding.code:
            return coding.code
    return None


def _highest_dose(doses: list[Dose]) -> Dose:
    """The highest of doses in one unit; ``None`` when they are in different units or one is missing."""
    units = {d[1] for d in doses if d is not None}
    if None in doses or len(units) != 1:
        return None
    return max((d for d in doses if d is not None), key=lambda d: d[0])


def _amount(quantity: Quantity | None, unit: str | None) -> Decimal | None:
    """The value of a quantity given in ``unit`` (by its UCUM code or its unit), else ``None``."""
    if quantity is None or quantity.value is None or quantity.comparator is not None or unit is None:
        return None
    given = quantity.code if quantity.system == UCUM and quantity.code else quantity.unit
    return quantity.value if given == unit else None


def _per_day_text(rate: Fraction | None) -> str:
    if rate is None:
        return "unknown"
    return f"{rate_decimal(rate)} a day" if rate >= 1 else f"{rate_decimal(rate * 7)} a week"


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
