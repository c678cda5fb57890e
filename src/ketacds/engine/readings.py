"""Whether a value may be believed, and which reading is the current one.

Plausibility (``rulesets/validity.yaml``): a number outside its plausible range is
reported as an ``implausible`` error and left out of its fact, with what was computed
from it (:func:`_believed`, :func:`_drop_implausible`, :func:`_plausible_reading`, and
:func:`_check_pairs` for components that must lie below one another). Time: a timed
patient datum or reading dated after ``now`` is not used, one older than its validity
window is history (:func:`_current`, :func:`_hours`), and only timed, believed readings
inside their window may be the ``latest`` of their kind (:func:`_mark_latest`).

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``);
they are not API.
"""

from __future__ import annotations

import datetime as dt
import functools
import types
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ketacds.dosing.units import canonical_unit, convert
from ketacds.engine.identity import Fact, _stable_path
from ketacds.engine.labels import _Label, _text
from ketacds.errors import KetacdsError
from ketacds.models.inputs import Context
from ketacds.models.quality import DataQualityIssue
from ketacds.models.trusted import trusted_constructor
from ketacds.ruleset.ir import Validity, ValidityRange

#: No ranges (a fact type without any, or no ``validity.yaml``).
_NO_RANGES: Mapping[str, ValidityRange] = types.MappingProxyType({})

_NUMBER = (int, Decimal)

#: Builds a :class:`DataQualityIssue` without re-running its field validators, for the
#: issues the fact-building modules write themselves: a severity of
#: ``QUALITY_SEVERITIES``, a code and texts that are ``str``. Call it with every field
#: by keyword (``severity``, ``code``, ``message``, ``resource``, ``path``), or by position in that order.
_new_issue = trusted_constructor(DataQualityIssue)

# Fields computed from another field of the same fact: when the source is not
# believed, neither is what was computed from it.
_DERIVED_FROM = {
    "medication": {"dose_mg": ("daily_mg",), "frequency_per_day": ("daily_mg",)},
    "order": {"dose_mg": ("mg_per_kg",)},
}


def _outside(ranges: Mapping[str, ValidityRange], field: str, value: Decimal | int) -> ValidityRange | None:
    """The plausible range ``value`` lies outside of (then it is not believed), or ``None``.

    ``ranges``: the ranges of the fact's type by field (:meth:`Validity.ranges_by_key`).
    """
    declared = ranges.get(field)
    if declared is None or declared.plausible(value):
        return None
    return declared


def _implausible(declared: ValidityRange, shown: str, path: str) -> DataQualityIssue:
    # No file:line here: an Assessment depends on the digest, never on the ruleset's layout.
    return _new_issue(
        severity="error",
        code="implausible",
        message=(
            f"{shown} is outside the plausible range: {declared.bounds()} (rulesets/validity.yaml); "
            "it is not used."
        ),
        resource=None,
        path=path,
    )


def _drop_implausible(
    fact: Fact,
    ranges: tuple[tuple[str, ValidityRange], ...],
    path: _Label,
    issues: list[DataQualityIssue],
) -> None:
    """Leave out every number field of ``fact`` outside its plausible range, and what came from it.

    ``ranges``: the ranges declared on the fact's type, sorted by field
    (:meth:`Validity.ranges_on`); fields are checked in that order (a field left out
    takes what was computed from it along). ``path`` is the item's place in its input
    list (``medications[2]``; text, or a label as built, written only when reported); a
    data-quality entry names the item by its id instead (:func:`_stable_path`).
    """
    kind = fact["t"]
    for field, declared in ranges:
        value = fact.get(field)
        if value is None:
            continue
        number = value.__class__
        if number is not int and number is not Decimal and (number is bool or not isinstance(value, _NUMBER)):
            continue  # not a number (``t``, ``id``, a text, a flag)
        if declared.plausible(value):  # exact: an int or a Decimal against Decimal bounds
            continue
        where = f"{_stable_path(_text(path), fact['id'])}.{field}"
        issues.append(_implausible(declared, f"{kind} {field} {value}", where))
        del fact[field]
        for derived in _DERIVED_FROM.get(kind, {}).get(field, ()):
            fact.pop(derived, None)


@functools.lru_cache(maxsize=16)
def _skew(future_minutes: Decimal) -> dt.timedelta:
    """The clock-skew tolerance of ``validity.yaml`` as a time difference (one per ruleset)."""
    return dt.timedelta(minutes=float(future_minutes))


def _hours(delta: dt.timedelta) -> Decimal:
    """A time difference in hours, exactly (no float)."""
    whole = delta.days * 86400 + delta.seconds
    if not delta.microseconds:  # the same Decimal as below: adding 0 changes neither value nor exponent
        return Decimal(whole) / 3600
    return (Decimal(whole) + Decimal(delta.microseconds) / 1_000_000) / 3600


def _current(
    time: dt.datetime | None,
    field: str,
    shown: str,
    path: str,
    validity: Validity | None,
    context: Context,
    found: list[DataQualityIssue],
) -> bool:
    """Whether a timed patient datum (weight, height, pregnancy status) may be used now.

    Not when it is dated after ``now`` (an error) or older than its validity window
    (history, ``info``); without a time it is taken as stated for this assessment.
    """
    if time is None or validity is None:
        return True
    # Compared as a difference: ``now + skew`` would overflow for a ``now`` near year 9999.
    if time - context.now > _skew(validity.future_minutes):
        found.append(
            _new_issue(
                severity="error",
                code="future-reading",
                message=(
                    f"{shown} recorded {time.isoformat()} is dated after the assessment time "
                    f"{context.now.isoformat()}; not used."
                ),
                resource=None,
                path=path,
            )
        )
        return False
    declared = validity.range_of("patient", field)
    if (
        declared is not None
        and declared.current_hours is not None
        and _hours(context.now - time) > declared.current_hours
    ):
        found.append(
            _new_issue(
                severity="info",
                code="stale-reading",
                message=(
                    f"{shown} recorded {time.isoformat()} is older than {declared.current_hours} hours, "
                    "so not used as current."
                ),
                resource=None,
                path=path,
            )
        )
        return False
    return True


def _plausible_reading(
    value: Decimal,
    unit: str,
    declared_ranges: tuple[tuple[str, ValidityRange], ...],
    shown: _Label,
    where: _Label,
    found: list[DataQualityIssue],
) -> bool:
    """Whether a reading's value is inside the plausible range of every value set it is in.

    ``declared_ranges``: the (value set, range) of each of the reading's value sets that
    has a range in ``validity.yaml``, in the order of its value sets
    (:func:`_reading_ranges`). ``shown`` (the reading in words) and ``where`` (its path)
    are labels as built (:mod:`ketacds.engine.labels`): written only when reported.
    """
    for vs, declared in declared_ranges:
        compared = value
        if unit and declared.unit is not None:
            try:
                if canonical_unit(unit) != declared.unit:
                    compared = convert(value, unit, declared.unit)
            except KetacdsError:
                found.append(
                    _new_issue(
                        severity="error",
                        code="implausible",
                        message=(
                            f"{_text(shown)} is not in {declared.unit}, the unit of {vs}; it is not used."
                        ),
                        resource=None,
                        path=f"{_text(where)}.unit",
                    )
                )
                return False
        if not declared.plausible(compared):
            found.append(_implausible(declared, _text(shown), f"{_text(where)}.value"))
            return False
    return True


def _reading_ranges(
    tags: tuple[str, ...], ranges: Mapping[str, ValidityRange]
) -> tuple[tuple[tuple[str, ValidityRange], ...], Decimal | None]:
    """The ranges and validity window of a reading in the value sets ``tags``.

    The (value set, range) of each that has a range, in order, and the shortest
    validity window among them (``None``: none has one). ``ranges``: the observation
    ranges by value set (:meth:`Validity.ranges_by_key`). Remembered by the value sets
    (a population repeats its codes) while ``ranges`` is the same object; emptied when
    full (bounded). Keys and values are immutable.
    """
    known = _READING_RANGES.get(tags)
    if known is not None and known[0] is ranges:
        return known[1], known[2]
    declared = tuple((vs, found) for vs in tags if (found := ranges.get(vs)) is not None)
    windows = [found.current_hours for _, found in declared if found.current_hours is not None]
    window = min(windows) if windows else None  # the first of the shortest, as ``min`` picks it
    if tags.__class__ is tuple:
        if len(_READING_RANGES) >= _READING_RANGES_SIZE:
            _READING_RANGES.clear()
        _READING_RANGES[tags] = (ranges, declared, window)
    return declared, window


#: :func:`_reading_ranges` by value sets: (the ranges it was worked out from, its answer).
_READING_RANGES: dict[
    tuple[str, ...],
    tuple[Mapping[str, ValidityRange], tuple[tuple[str, ValidityRange], ...], Decimal | None],
] = {}
_READING_RANGES_SIZE = 4096


def _check_pairs(built: list[list[Any]], validity: Validity, found: list[DataQualityIssue]) -> None:
    """Within one reading, a component that must lie below another (diastolic < systolic).

    ``built``: the reading's rows (:data:`_Row`); a component not believed has its
    ``believed`` set to ``False`` here.
    """
    for pair in validity.pairs:
        lower = [i for i, row in enumerate(built) if row[5] and pair.lower in row[0]["vs"]]
        upper = [i for i, row in enumerate(built) if row[5] and pair.upper in row[0]["vs"]]
        for i in lower:
            for j in upper:
                if i != j and Decimal(str(built[i][0]["value"])) >= Decimal(str(built[j][0]["value"])):
                    low, high = built[i], built[j]
                    low[1], high[1] = _text(low[1]), _text(high[1])
                    found.append(
                        _new_issue(
                            severity="error",
                            code="implausible",
                            message=(
                                f"In one reading, {low[1]} is not below {high[1]} "
                                f"({pair.lower} must be below {pair.upper}); neither is used."
                            ),
                            resource=None,
                            path=_text(low[2]),
                        )
                    )
                    low[5] = high[5] = False


#: One reading for :func:`_mark_latest`, a ``list``: its fact, label and path (as built:
#: :mod:`ketacds.engine.labels`; a label written for a message is kept in place), time,
#: exact hours before ``now`` (``None`` when untimed), whether its value is believed,
#: and the shortest validity window of its value sets (``None``: none has one).
_Row = list[Any]


def _mark_latest(rows: list[_Row], found: list[DataQualityIssue] | None = None) -> None:
    """Mark each reading that is the current one of every value set it belongs to.

    A reading is a candidate when it is believed (plausible, not in the future), timed,
    and inside the validity window of each of its value sets; the newest candidate is
    the latest. An untimed or older reading is never the latest: an older one is
    history (an ``info`` issue), an untimed one of a kind with a validity window is an
    error (it may be the newest), and rules needing a current value see a gap.
    """
    reported: list[DataQualityIssue] = [] if found is None else found
    candidates: list[tuple[Fact, dt.datetime]] = []
    for row in rows:
        fact, label, where, moment, elapsed, believed, window = row
        if not believed or not fact["vs"]:
            continue
        if moment is None:
            # It cannot be placed in time, so it might be the newest: never the current
            # reading, and where the kind must be current an error (the status cannot
            # reassure while it stands; otherwise an older reading would speak for it).
            row[1] = label = _text(label)
            reported.append(
                _new_issue(
                    severity="error" if window is not None else "info",
                    code="untimed-reading",
                    message=(
                        f"{label}: without a time it cannot be the current reading and may be newer "
                        "than any other; it is not used."
                    ),
                    resource=None,
                    path=_text(where),
                )
            )
            continue
        # Exact age in hours (never the rounded ``hours_ago``), compared with the window.
        if window is not None and elapsed is not None and elapsed > window:
            row[1] = label = _text(label)
            reported.append(
                _new_issue(
                    severity="info",
                    code="stale-reading",
                    message=(
                        f"{label}: older than {window} hours, so not the current reading; shown as history."
                    ),
                    resource=None,
                    path=_text(where),
                )
            )
            continue
        candidates.append((fact, moment))
    newest: dict[str, dt.datetime] = {}
    for fact, moment in candidates:
        for vs in fact["vs"]:
            if vs not in newest or moment > newest[vs]:
                newest[vs] = moment
    chosen = set()
    for fact, moment in candidates:  # each with at least one value set
        for vs in fact["vs"]:
            if newest[vs] > moment:
                break
        else:
            chosen.add(fact["id"])
    for row in rows:
        fact = row[0]
        fact["latest"] = fact["id"] in chosen
