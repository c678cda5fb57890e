"""The fact (and the label people read) built from each kind of item of a record.

One builder per kind: the patient (age at ``now``, weight, height and BMI in exact
units, pregnancy status), a medication (dose in mg, daily dose), the observations (one
fact per value or panel component, with hours since the reading and which is the
``latest``), the order (dose in mg and per kg), the planned session, and the
data-quality facts the rules see. Units are normalised exactly (kg, cm, mg); a unit
that cannot be read, or a number beyond the exact context, is an ``InputError``.

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``);
they are not API.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ketacds.dosing.functions import DoseInputs
from ketacds.dosing.units import convert, dimension_of
from ketacds.engine.identity import (
    Fact,
    _component_id,
    _describe,
    _drug_key,
    _fact_id,
)
from ketacds.engine.labels import _Label, _text
from ketacds.engine.numbers import (
    _EXACT,
    _HUNDREDTH,
    _TENTH,
    _THOUSANDTH,
    exact,
    shown,
)
from ketacds.engine.readings import (
    _NO_RANGES,
    _READING_RANGES,
    _check_pairs,
    _current,
    _hours,
    _implausible,
    _mark_latest,
    _new_issue,
    _outside,
    _plausible_reading,
    _reading_ranges,
    _Row,
    _skew,
)
from ketacds.errors import InputError, KetacdsError
from ketacds.models.inputs import (
    Coding,
    Context,
    Medication,
    Observation,
    Order,
    PatientRecord,
    Quantity,
)
from ketacds.models.quality import DataQualityIssue
from ketacds.models.trusted import trusted_constructor
from ketacds.ruleset.ir import Validity, ValidityRange
from ketacds.terminology.valuesets import Terminology

#: Builds :class:`DoseInputs` (weight_kg, height_cm, sex, ordered_mg, in that order)
#: without attrs' keyword handling: it has no validators to skip.
_new_dose_inputs = trusted_constructor(DoseInputs)

# The unit each measured dimension is expressed in, inside facts.
_FACT_UNITS = {"mass": "kg", "length": "cm"}

_OUT_OF_RANGE = "{} is beyond the 120 significant digits ketacds computes with exactly"


def _age(record: PatientRecord, now: dt.datetime) -> int | None:
    patient = record.patient
    if patient.birth_date is None:
        return patient.age_years
    today = now.date()
    if patient.birth_date > today:
        raise InputError("patient.birth_date", "is after the assessment time 'now'")
    years = today.year - patient.birth_date.year
    if (today.month, today.day) < (patient.birth_date.month, patient.birth_date.day):
        years -= 1
    if patient.age_years is not None and patient.age_years != years:
        raise InputError("patient.age_years", f"is {patient.age_years} but birth_date gives {years} at 'now'")
    return years


def _measure(value: Decimal, unit: str | None, path: str, suffix: str = "") -> tuple[Decimal, str]:
    """``value`` in the unit facts use for its dimension, with that unit (``""``: no unit).

    An unknown unit is an input error at ``path + suffix``; a number beyond the exact
    context one at ``path``.
    """
    if unit is None:
        return value, ""
    try:
        target = _FACT_UNIT_OF.get(unit)
        if target is None:
            target = _fact_unit(unit)
        if not target:
            return value, unit
        return convert(value, unit, target), target
    except KetacdsError as error:
        raise InputError(path + suffix, str(error)) from None
    except decimal.DecimalException:
        raise InputError(path, _OUT_OF_RANGE.format(value)) from None


def _fact_unit(unit: str) -> str:
    """The unit a value in ``unit`` is expressed in inside facts (``""``: as written); remembered."""
    target = _FACT_UNITS.get(dimension_of(unit), "")
    if unit.__class__ is str and len(_FACT_UNIT_OF) < _FACT_UNIT_SIZE:
        _FACT_UNIT_OF[unit] = target
    return target


#: :func:`_fact_unit` of every unit read (known units only: an unknown one raises every
#: time), up to ``_FACT_UNIT_SIZE`` of them; then only read (bounded).
_FACT_UNIT_OF: dict[str, str] = {}
_FACT_UNIT_SIZE = 1024


def _plan_fact(context: Context, dose_inputs: DoseInputs) -> Fact:
    fact: Fact = {"t": "plan", "id": "plan"}
    plan = context.plan
    if plan is None:
        return fact
    weight = dose_inputs.weight_kg
    mg, per_kg = plan.dose_mg, plan.dose_mg_per_kg
    if mg is None and per_kg is not None and weight is not None:
        mg = per_kg * weight
    if per_kg is None and mg is not None and weight is not None and weight > 0:
        per_kg = mg / weight
    for name, value in (
        ("dose_mg", mg),
        ("dose_mg_per_kg", per_kg),
        ("sessions_per_week", plan.sessions_per_week),
    ):
        if value is not None:
            fact[name] = exact(value)
    for name, count in (
        ("treatment_week", plan.treatment_week),
        ("session_number", plan.session_number),
        ("missed_sessions", plan.missed_sessions),
    ):
        if count is not None:
            fact[name] = count
    if plan.symptoms_worsened is not None:
        fact["symptoms_worsened"] = plan.symptoms_worsened
    return fact


def _plan_label(fact: Fact) -> str:
    parts = []
    if "dose_mg" in fact:
        parts.append(f"{shown(fact['dose_mg'], _TENTH)} mg")
    if "dose_mg_per_kg" in fact:
        parts.append(f"{shown(fact['dose_mg_per_kg'], _THOUSANDTH)} mg/kg")
    if "sessions_per_week" in fact:
        parts.append(f"{fact['sessions_per_week']} sessions/week")
    if "treatment_week" in fact:
        parts.append(f"week {fact['treatment_week']}")
    if "session_number" in fact:
        parts.append(f"session {fact['session_number']}")
    if "missed_sessions" in fact:
        parts.append(f"{fact['missed_sessions']} missed since the last session")
    if "symptoms_worsened" in fact:
        parts.append("symptoms worsened" if fact["symptoms_worsened"] else "symptoms not worsened")
    return "planned session: " + (", ".join(parts) if parts else "no dose or schedule given")


def _quality_facts(issues: Iterable[DataQualityIssue]) -> list[tuple[Fact, _Label]]:
    """One fact per kind of error or warning (severity, code, resource type), with a count in its label.

    Info issues (left out by design) are reported in the Assessment, not asserted.
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for issue in issues:
        if issue.severity == "info":
            continue
        kind = issue.resource.split("/", 1)[0].split("[", 1)[0] if issue.resource else ""
        groups.setdefault((issue.severity, issue.code, kind), []).append(issue.message)
    out = []
    for (severity, code, kind), messages in sorted(groups.items()):
        fact: Fact = {
            "t": "quality",
            "id": f"quality:{severity}:{code}:{kind}",
            "severity": severity,
            "code": code,
        }
        if kind:
            fact["resource_type"] = kind
        out.append((fact, (_quality_label, severity, kind, messages)))
    return out


def _quality_label(severity: str, kind: str, messages: list[str]) -> str:
    times = f" ({len(messages)} times)" if len(messages) > 1 else ""
    where = f" {kind}:" if kind else ""
    return f"data quality {severity}{times}:{where} {min(messages)}"


def _order_fact(
    order: Order, dose_inputs: DoseInputs, terminology: Terminology
) -> tuple[Fact, str, Decimal | None]:
    fact: Fact = {
        "t": "order",
        "id": _fact_id("order", order),
        "vs": list(terminology.tag_text(order.code, order.name)),
        "drug": _drug_key(order.code, order.name),
    }
    parts = [f"ordered: {_describe(order.code, order.name)}"]
    dose_mg = None
    if order.dose is not None and order.unit is not None:
        dose_mg, fact["dose_mg"] = _dose_in_mg(order.dose, order.unit, "context.order", ".unit")
        parts.append(f"{order.dose} {order.unit}")
        if dose_inputs.weight_kg is not None and dose_inputs.weight_kg > 0:
            per_kg = dose_mg / dose_inputs.weight_kg  # exact: KCDS-ORD-003 compares it with 0.75
            fact["mg_per_kg"] = exact(per_kg)
            parts.append(f"({per_kg.quantize(_HUNDREDTH, ROUND_HALF_EVEN)} mg/kg)")
    else:
        parts.append("dose not stated")
    if order.per_week is not None:
        fact["per_week"] = exact(order.per_week)
        parts.append(f"{order.per_week} times a week")
    return fact, " ".join(parts), dose_mg


def _dose_in_mg(value: Decimal, unit: str, path: _Label, suffix: str = "") -> tuple[Decimal, int | Decimal]:
    """A dose in mg, and that dose as a fact carries it (:func:`exact`).

    An unknown unit is an input error at ``path + suffix``, a number beyond the exact
    context one at ``path`` (a text, or a label as built: written only then).

    Remembered by (dose, unit), in the exact context facts are built in: a population
    repeats its strengths. The answer depends only on the dose's value (equal values,
    one answer: the converted dose has no trailing zeros), except for zero (``-0`` stays
    ``-0``), so zero, NaN and infinity are never remembered; neither is an error.
    """
    remember = (
        unit.__class__ is str
        and value.__class__ is Decimal
        and value
        and value.is_finite()
        and decimal.getcontext().prec == _EXACT.prec
    )
    if remember:
        known = _DOSES.get((value, unit))
        if known is not None:
            return known
    try:
        mg = convert(value, unit, "mg")
    except KetacdsError as error:
        raise InputError(_text(path) + suffix, str(error)) from None
    except decimal.DecimalException:
        raise InputError(_text(path), _OUT_OF_RANGE.format(value)) from None
    known = (mg, exact(mg))
    if remember:
        if len(_DOSES) >= _DOSES_SIZE:
            _DOSES.clear()
        _DOSES[(value, unit)] = known
    return known


#: :func:`_dose_in_mg` by (dose, unit as written), in the exact context facts are built
#: in; emptied when full (bounded). Keys and values are immutable.
_DOSES: dict[tuple[Decimal, str], tuple[Decimal, int | Decimal]] = {}
_DOSES_SIZE = 4096


def _patient_fact(
    record: PatientRecord,
    context: Context,
    validity: Validity | None = None,
    issues: list[DataQualityIssue] | None = None,
) -> tuple[Fact, DoseInputs]:
    # Each message is written only when it is reported.
    p = record.patient
    found: list[DataQualityIssue] = [] if issues is None else issues
    fact: Fact = {"t": "patient", "id": "patient"}
    ranges = validity.ranges_by_key("patient") if validity is not None else _NO_RANGES
    age = _age(record, context.now)
    if age is not None:
        declared = _outside(ranges, "age_years", age)
        if declared is None:
            fact["age_years"] = age
        else:
            found.append(_implausible(declared, f"Age {age} years", "patient.age_years"))
    if p.sex is not None:
        fact["sex"] = p.sex
    weight = _measured(p.weight, "weight_kg", "Weight", "patient.weight", validity, ranges, context, found)
    height = _measured(p.height, "height_cm", "Height", "patient.height", validity, ranges, context, found)
    if weight is not None and height is not None:
        if height <= 0:
            raise InputError("patient.height", "must be more than zero")
        bmi = weight / (height / 100) ** 2
        declared = _outside(ranges, "bmi", bmi)
        if declared is not None or bmi.adjusted() > 110:
            # For the message; beyond the exact context's 120 digits it raises, as it always did.
            rounded = bmi.quantize(_TENTH, ROUND_HALF_EVEN)
        if declared is None:
            fact["bmi"] = exact(bmi)
        else:
            shown = (
                f"The BMI of {p.weight.value} {p.weight.unit} and {p.height.value} {p.height.unit} "  # type: ignore[union-attr]
                f"({rounded} kg/m2)"
            )
            found.append(_implausible(declared, shown, "patient"))
            # Weight and height do not belong together: neither is believed.
            weight = height = None
    if weight is not None:
        fact["weight_kg"] = exact(weight)
    if height is not None:
        fact["height_cm"] = exact(height)
    if p.pregnant is not None:
        fact["pregnant"] = p.pregnant
    if p.lactating is not None:
        fact["lactating"] = p.lactating
    if p.hepatic_class is not None:
        fact["hepatic_class"] = p.hepatic_class
    if p.pregnant is not None and p.pregnant_time is not None:
        shown = f"Pregnancy status ({'pregnant' if p.pregnant else 'not pregnant'})"
        if not _current(
            p.pregnant_time, "pregnant", shown, "patient.pregnant_time", validity, context, found
        ):
            del fact["pregnant"]  # not current: unknown, so the pregnancy gap asks again
    if context.setting is not None:
        fact["setting"] = context.setting
    return fact, _new_dose_inputs(weight, height, p.sex, None)


def _measured(
    quantity: Quantity | None,
    field: str,
    what: str,
    path: str,
    validity: Validity | None,
    ranges: Mapping[str, ValidityRange],
    context: Context,
    found: list[DataQualityIssue],
) -> Decimal | None:
    """A patient's weight or height in the fact's unit, when it is current and plausible, else ``None``."""
    if quantity is None:
        return None
    if quantity.time is not None and not _current(
        quantity.time,
        field,
        f"{what} {quantity.value} {quantity.unit}",
        f"{path}.time",
        validity,
        context,
        found,
    ):
        return None
    value = _measure(quantity.value, quantity.unit, path)[0]
    declared = _outside(ranges, field, value)
    if declared is None:
        return value
    found.append(_implausible(declared, f"{what} {quantity.value} {quantity.unit}", path))
    return None


def _patient_label(fact: Fact) -> str:
    parts = [
        f"{fact['age_years']} y" if "age_years" in fact else "age unknown",
        fact.get("sex", "sex unknown"),
        f"{shown(fact['weight_kg'], _HUNDREDTH)} kg" if "weight_kg" in fact else "weight unknown",
    ]
    if "height_cm" in fact:
        parts.append(f"{shown(fact['height_cm'], _TENTH)} cm")
    if "bmi" in fact:
        parts.append(f"BMI {shown(fact['bmi'], _TENTH)}")
    return "patient: " + ", ".join(parts)


def _medication_fact(m: Medication, terminology: Terminology, path: _Label) -> tuple[Fact, _Label]:
    code, name, status = m.code, m.name, m.status
    fact: Fact = {
        "t": "medication",
        "id": _fact_id("medication", m),
        "vs": list(terminology.tag_text(code, name)),
        "drug": _drug_key(code, name),
        "status": status,
        "active": status == "active",
        "as_needed": m.as_needed,
    }
    dose, unit, per_day = m.dose, m.unit, m.frequency_per_day
    if dose is not None and unit is not None:
        dose_mg, fact["dose_mg"] = _dose_in_mg(dose, unit, path, ".unit")
        if per_day is not None:
            fact["daily_mg"] = exact(dose_mg * per_day)
    if per_day is not None:
        fact["frequency_per_day"] = exact(per_day)
    return fact, (_medication_label, m)


def _medication_label(m: Medication) -> str:
    dose, unit, per_day = m.dose, m.unit, m.frequency_per_day
    dose_text = ""
    if dose is not None and unit is not None:
        dose_text = f" {dose} {unit}"
    if per_day is not None:
        dose_text += f" {per_day}/day"
    if m.as_needed:
        dose_text += " as needed"
    return f"{_describe(m.code, m.name)}{dose_text} ({m.status})"


def _observation_facts(
    observations: Iterable[Observation],
    context: Context,
    terminology: Terminology,
    validity: Validity | None = None,
    issues: list[DataQualityIssue] | None = None,
) -> tuple[list[_Row], dict[str, _Observed]]:
    """One fact per observation value, or per component of a panel.

    A value outside its plausible range, or a reading timed after ``now`` (beyond the
    clock-skew tolerance), is reported as an error and its value left out; only timed,
    plausible readings inside their validity window may be the ``latest`` of their kind.
    Untimed and older readings stay as history (reported as ``info``).

    Returns a row per value (:data:`~ketacds.engine.readings._Row`: the fact, its label
    and path as built, ...), and the code and name of each observation and panel
    component by the id of its fact, with the code and name of a component's observation
    (:data:`_Observed`; the last item given an id names it).
    """
    found: list[DataQualityIssue] = [] if issues is None else issues
    skew = _skew(validity.future_minutes) if validity is not None else dt.timedelta(0)
    ranges = validity.ranges_by_key("observation") if validity is not None else _NO_RANGES
    pairs = validity is not None and bool(validity.pairs)
    now = context.now
    tag = terminology.tag
    units = _FACT_UNIT_OF
    rows: list[_Row] = []
    items: dict[str, _Observed] = {}
    moments: dict[tuple[dt.datetime, dt.timedelta | None], _Moment] = {}
    for index, o in enumerate(observations):
        parent = _fact_id("observation", o)
        items[parent] = (o.code, o.name, None, None)
        # Data-quality entries name the item by its id, never its place in the list
        # (``where``, written when reported); an input error names it by its place, as
        # every loader error does.
        time = o.time
        when: list[Any] | None = None  # the time in the label (_observation_label)
        elapsed: Decimal | None
        hours_ago: int | Decimal | None
        if time is not None:
            # Readings of one encounter share its time: worked out once per moment. Equal
            # times with equal offsets are the same instant written the same way.
            key = (time, time.utcoffset())
            moment = moments.get(key)
            if moment is None:
                elapsed_hours = _hours(now - time)  # exact: no float seconds
                # (exact hours, as the fact carries them, in the future, label cell)
                moment = moments[key] = (elapsed_hours, exact(elapsed_hours), time - now > skew, [time])
            elapsed, hours_ago, future, when = moment
        else:
            elapsed = hours_ago = None
            future = False
        # (fact id, code, name, value, unit, component index or -1)
        parts: list[tuple[str, Coding | None, str | None, Decimal, str | None, int]] = []
        if o.value is not None:
            parts.append((parent, o.code, o.name, o.value, o.unit, -1))
        if o.components:
            for c_index, component in enumerate(o.components):
                child = _component_id(parent, component)
                items[child] = (component.code, component.name, o.code, o.name)
                parts.append(
                    (child, component.code, component.name, component.value, component.unit, c_index)
                )
        if future:
            found.append(
                _new_issue(
                    severity="error",
                    code="future-reading",
                    message=(
                        f"{_describe(o.code, o.name)} is dated {time.isoformat()}, after the "  # type: ignore[union-attr]
                        f"assessment time {now.isoformat()}; it is not used."
                    ),
                    resource=None,
                    path=f"{_reading_path(parent, -1)}.time",
                )
            )
        built: list[_Row] = []
        for fact_id, code, name, value, unit, c_index in parts:
            if unit is None:
                measured, fact_unit = value, ""
            elif units.get(unit) == "":  # a unit facts keep as written: what _measure returns
                measured, fact_unit = value, unit
            else:
                at = f"observations[{index}]"
                if c_index >= 0:
                    at += f".components[{c_index}]"
                measured, fact_unit = _measure(value, unit, at, ".unit")
            tags = tag(code, name)
            fact: Fact = {
                "t": "observation",
                "id": fact_id,
                "vs": list(tags),
                "value": exact(measured),
                "unit": fact_unit,
            }
            if elapsed is not None:
                fact["hours_ago"] = hours_ago
            known = _READING_RANGES.get(tags)  # _reading_ranges(tags, ranges), its memo read here
            if known is not None and known[0] is ranges:
                declared, window = known[1], known[2]
            else:
                declared, window = _reading_ranges(tags, ranges)
            where = (_reading_path, parent, c_index)
            believed = not future and (
                not declared
                or _plausible_reading(
                    measured, fact_unit, declared, (_reading_text, code, name, value, unit), where, found
                )
            )
            label = (_observation_label, code, name, value, unit, when)
            built.append([fact, label, where, time, elapsed, believed, window])
        if pairs and len(built) > 1:  # a pair is two components of one reading
            _check_pairs(built, validity, found)  # type: ignore[arg-type]
        for row in built:
            if not row[5]:
                del row[0]["value"]  # not believed: never compared, never the latest
        rows += built
    _mark_latest(rows, found)
    return rows, items


#: An observation's or component's code and name, and a component's observation's code
#: and name (``None, None`` for an observation), as :func:`_observation_facts` returns them.
_Observed = tuple[Coding | None, str | None, Coding | None, str | None]

#: What :func:`_observation_facts` works out once per moment of a record: the exact hours
#: before ``now``, those hours as the fact carries them, whether it is in the future, and
#: the cell its label's time is written into.
_Moment = tuple[Decimal, int | Decimal, bool, list[Any]]


def _reading_path(parent: str, c_index: int) -> str:
    """Where a data-quality entry names a reading: by its observation's id (:func:`_stable_path`)."""
    path = f"observations[{parent.split(':', 1)[1]}]"
    return path if c_index < 0 else f"{path}.components[{c_index}]"


def _reading_text(code: Coding | None, name: str | None, value: Decimal, unit: str | None) -> str:
    """A reading in words, as given: ``Systolic blood pressure 120 mm[Hg]``."""
    return f"{_describe(code, name)} {value} {unit}" if unit else f"{_describe(code, name)} {value}"


def _observation_label(
    code: Coding | None, name: str | None, value: Decimal, unit: str | None, when: list[Any] | None
) -> str:
    """An observation's label: the reading in words and when it was made.

    ``when``: ``None`` (untimed), or a cell holding the reading's time, replaced by its
    words when first written (the readings of one moment share the cell).
    """
    if when is None:
        return f"{_reading_text(code, name, value, unit)} (time not recorded)"
    text = when[0]
    if text.__class__ is not str:
        text = when[0] = f" at {text.isoformat()}"
    return f"{_reading_text(code, name, value, unit)}{text}"
