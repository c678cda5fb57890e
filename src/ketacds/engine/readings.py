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

from ketacds.dosing.units import canonical_unit, convert
from ketacds.engine.identity import Fact, _stable_path
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
    path: str,
    issues: list[DataQualityIssue],
) -> None:
    """Leave out every number field of ``fact`` outside its plausible range, and what came from it.

    ``ranges``: the ranges declared on the fact's type, sorted by field
    (:meth:`Validity.ranges_on`); fields are checked in that order (a field left out
    takes what was computed from it along). ``path`` is the item's place in its input
    list (``medications[2]``); a data-quality entry names the item by its id instead
    (:func:`_stable_path`).
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
        where = f"{_stable_path(path, fact['id'])}.{field}"
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
    fact: Fact,
    value: Decimal,
    unit: str,
    ranges: Mapping[str, ValidityRange],
    shown: str,
    where: str,
    found: list[DataQualityIssue],
) -> bool:
    """Whether a reading's value is inside the plausible range of every value set it is in.

    ``ranges``: the observation ranges of ``validity.yaml`` by value set
    (:meth:`Validity.ranges_by_key`; empty without a validity).
    """
    for vs in fact["vs"]:
        declared = ranges.get(vs)
        if declared is None:
            continue
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
                        message=f"{shown} is not in {declared.unit}, the unit of {vs}; it is not used.",
                        resource=None,
                        path=f"{where}.unit",
                    )
                )
                return False
        if not declared.plausible(compared):
            found.append(_implausible(declared, shown, f"{where}.value"))
            return False
    return True


def _check_pairs(
    built: list[tuple[Fact, str, str, bool]], validity: Validity, found: list[DataQualityIssue]
) -> list[tuple[Fact, str, str, bool]]:
    """Within one reading, a component that must lie below another (diastolic < systolic)."""
    out = list(built)
    for pair in validity.pairs:
        lower = [i for i, (f, _, _, ok) in enumerate(out) if ok and pair.lower in f["vs"]]
        upper = [i for i, (f, _, _, ok) in enumerate(out) if ok and pair.upper in f["vs"]]
        for i in lower:
            for j in upper:
                if i != j and Decimal(str(out[i][0]["value"])) >= Decimal(str(out[j][0]["value"])):
                    found.append(
                        _new_issue(
                            severity="error",
                            code="implausible",
                            message=(
                                f"In one reading, {out[i][1]} is not below {out[j][1]} "
                                f"({pair.lower} must be below {pair.upper}); neither is used."
                            ),
                            resource=None,
                            path=out[i][2],
                        )
                    )
                    out[i] = (*out[i][:3], False)
                    out[j] = (*out[j][:3], False)
    return out


#: One reading for :func:`_mark_latest`: its fact, label, path, time, exact hours
#: before ``now`` (``None`` when untimed) and whether its value is believed.
_Row = tuple[Fact, str, str, "dt.datetime | None", "Decimal | None", bool]


def _mark_latest(
    rows: list[_Row],
    ranges: Mapping[str, ValidityRange] = _NO_RANGES,
    found: list[DataQualityIssue] | None = None,
) -> None:
    """Mark each reading that is the current one of every value set it belongs to.

    A reading is a candidate when it is believed (plausible, not in the future), timed,
    and inside the validity window of each of its value sets (``ranges``: the
    observation ranges by value set); the newest candidate is the latest. An untimed or
    older reading is never the latest: an older one is history (an ``info`` issue), an
    untimed one of a kind with a validity window is an error (it may be the newest), and
    rules needing a current value see a gap.
    """
    reported: list[DataQualityIssue] = [] if found is None else found
    candidates: list[tuple[Fact, dt.datetime]] = []
    for fact, label, where, moment, elapsed, believed in rows:
        kinds = fact["vs"]
        if not believed or not kinds:
            continue
        windows = [
            declared.current_hours
            for vs in kinds
            if (declared := ranges.get(vs)) is not None and declared.current_hours is not None
        ]
        if moment is None:
            # It cannot be placed in time, so it might be the newest: never the current
            # reading, and where the kind must be current an error (the status cannot
            # reassure while it stands; otherwise an older reading would speak for it).
            reported.append(
                _new_issue(
                    severity="error" if windows else "info",
                    code="untimed-reading",
                    message=(
                        f"{label}: without a time it cannot be the current reading and may be newer "
                        "than any other; it is not used."
                    ),
                    resource=None,
                    path=where,
                )
            )
            continue
        # Exact age in hours (never the rounded ``hours_ago``), compared with the window.
        if windows and elapsed is not None and elapsed > min(windows):
            reported.append(
                _new_issue(
                    severity="info",
                    code="stale-reading",
                    message=(
                        f"{label}: older than {min(windows)} hours, so not the current reading; "
                        "shown as history."
                    ),
                    resource=None,
                    path=where,
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
