"""Turn a patient record into the flat facts that rules match.

Done once per assessment, in Python, before any engine sees the data:

* value-set tagging of every code and name (``vs``);
* units normalised exactly (kg, cm, mg, mmHg);
* derived quantities: age at ``now``, BMI, daily dose, hours since a reading,
  which reading of each kind is the latest, the ordered dose per kg;
* data-quality issues of severity error or warning, as ``quality`` facts (rules
  must see that part of the record could not be read);
* identity: every fact gets an id from its own content (or from the input's ``id``),
  so ids never depend on the order of the input lists, and exact duplicates collapse.

A field the input does not give is left out of the fact, never filled with a
default: rules test ``present: false`` to see a gap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from ketacds.dosing.functions import DoseInputs
from ketacds.dosing.units import canonical_unit, convert, dimension_of
from ketacds.errors import InputError, KetacdsError
from ketacds.models.inputs import (
    Coding,
    Context,
    Medication,
    Observation,
    Order,
    PatientRecord,
)
from ketacds.models.quality import DataQualityIssue
from ketacds.ruleset.ir import Table, Validity, ValidityRange
from ketacds.terminology.valuesets import Terminology, normalise_name

__all__ = ["FactSet", "build_facts", "to_json_number"]

Fact = dict[str, Any]

_ACTIVE_CONDITION = ("active", "recurrence", "relapse")
# The unit each measured dimension is expressed in, inside facts.
_FACT_UNITS = {"mass": "kg", "length": "cm"}
_TENTH = Decimal("0.1")
_HUNDREDTH = Decimal("0.01")
# Fields computed from another field of the same fact: when the source is not
# believed, neither is what was computed from it.
_DERIVED_FROM = {
    "medication": {"dose_mg": ("daily_mg",), "frequency_per_day": ("daily_mg",)},
    "order": {"dose_mg": ("mg_per_kg",)},
}


@attrs.frozen
class FactSet:
    """The facts of one assessment, in a canonical order (sorted by id).

    ``quality`` holds what building the facts found it could not read as given (an
    unknown code or name, an implausible, future, stale or untimed value): reported in
    the Assessment beside the record's own ``data_quality``, and, for errors and
    warnings, asserted as ``quality`` facts the rules see.
    """

    facts: tuple[Fact, ...]
    labels: dict[str, str]
    dose_inputs: DoseInputs
    quality: tuple[DataQualityIssue, ...] = ()

    def by_id(self) -> dict[str, Fact]:
        """Return the facts keyed by id."""
        return {fact["id"]: fact for fact in self.facts}


def to_json_number(value: Decimal) -> int | float:
    """A Decimal as the JSON number engines compare: int when whole, else float."""
    return int(value) if value == value.to_integral_value() else float(value)


def _content_id(kind: str, item: Any) -> str:
    # The repr of a frozen attrs model lists every field in a fixed order, and the
    # reprs of str, Decimal, date and datetime are exact: equal content, equal id.
    digest = hashlib.blake2b(repr(item).encode(), digest_size=6).hexdigest()
    return f"{kind}:{digest}"


def _fact_id(kind: str, item: Any) -> str:
    explicit = getattr(item, "id", None)
    return f"{kind}:{explicit}" if explicit else _content_id(kind, item)


def _describe(code: Coding | None, name: str | None) -> str:
    if name:
        return name
    assert code is not None  # the models require a code or a name
    return code.display or f"{code.system.rsplit('/', 1)[-1]} {code.code}"


def _drug_key(code: Coding | None, name: str | None) -> str:
    return normalise_name(name) if name else f"{code.system}|{code.code}" if code else ""


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


def _measure(value: Decimal, unit: str | None, path: str) -> tuple[Decimal, str]:
    if unit is None:
        return value, ""
    try:
        dimension = dimension_of(unit)
        target = _FACT_UNITS.get(dimension)
        if target is None:
            return value, unit
        return convert(value, unit, target), target
    except KetacdsError as error:
        raise InputError(path, str(error)) from None


def build_facts(
    record: PatientRecord,
    context: Context,
    terminology: Terminology,
    tables: Sequence[Table] = (),
    validity: Validity | None = None,
) -> FactSet:
    """Build the facts of one assessment.

    ``tables`` are the ruleset's conversion tables (e.g. diazepam equivalents);
    ``validity`` its plausible ranges and validity windows (``rulesets/validity.yaml``):
    a value outside its range is left out of its fact and reported as a data-quality
    error; a reading is the ``latest`` of its kind only when it is timed, plausible, not
    after ``now`` (beyond the clock-skew tolerance) and inside its validity window.

    Raises:
        InputError: the record contradicts itself (age vs birth date, duplicated ids, ...).
    """
    facts: dict[str, Fact] = {}
    labels: dict[str, str] = {}
    # What this function finds it cannot read as given; each step appends here.
    issues: list[DataQualityIssue] = []

    def add(fact: Fact, label: str, path: str) -> None:
        if validity is not None and fact["t"] != "patient":
            _drop_implausible(fact, validity, _stable_path(path, fact["id"]), issues)
        existing = facts.get(fact["id"])
        if existing is not None and existing != fact:
            raise InputError(path, f"id {fact['id'].split(':', 1)[1]!r} is used by two different items")
        facts[fact["id"]] = fact
        labels[fact["id"]] = label

    patient_fact, dose_inputs = _patient_fact(record, context, validity, issues)
    add(patient_fact, _patient_label(patient_fact), "patient")

    for index, c in enumerate(record.conditions):
        fact: Fact = {
            "t": "condition",
            "id": _fact_id("condition", c),
            "vs": list(terminology.tag(c.code, c.name)),
            "clinical_status": c.clinical_status,
            "active": c.clinical_status in _ACTIVE_CONDITION,
        }
        if c.onset is not None:
            fact["onset_days_ago"] = (context.now.date() - c.onset).days
        add(fact, f"{_describe(c.code, c.name)} ({c.clinical_status})", f"conditions[{index}]")

    for index, m in enumerate(record.medications):
        add(*_medication_fact(m, terminology, f"medications[{index}]"), f"medications[{index}]")

    for index, t in enumerate(record.trials):
        path = f"trials[{index}]"
        fact = {
            "t": "trial",
            "id": _fact_id("trial", t),
            "vs": list(terminology.tag(t.code, t.name)),
            "drug": _drug_key(t.code, t.name),
            "response": t.response,
            "episode": t.episode,
        }
        if t.dose is not None and t.unit is not None:
            fact["dose_mg"] = to_json_number(_measure_dose(t.dose, t.unit, f"{path}.unit"))
        if t.weeks is not None:
            fact["weeks"] = to_json_number(t.weeks)
        if t.adequate_dose is not None:
            fact["adequate_dose"] = t.adequate_dose
        weeks = f", {t.weeks} weeks" if t.weeks is not None else ""
        label = f"{_describe(t.code, t.name)} trial ({t.episode} episode{weeks}, response {t.response})"
        add(fact, label, path)

    for index, a in enumerate(record.allergies):
        fact = {
            "t": "allergy",
            "id": _fact_id("allergy", a),
            "vs": list(terminology.tag(a.code, a.name)),
            "active": a.status == "active",
        }
        add(fact, f"allergy: {_describe(a.code, a.name)} ({a.status})", f"allergies[{index}]")

    for index, s in enumerate(record.substance_use):
        fact = {
            "t": "substance",
            "id": _fact_id("substance", s),
            "vs": list(terminology.tag(s.code, s.name)),
            "status": s.status,
        }
        add(fact, f"substance use: {_describe(s.code, s.name)} ({s.status})", f"substance_use[{index}]")

    for fact, label, path in _observation_facts(record.observations, context, terminology, validity, issues):
        add(fact, label, path)

    if context.order is not None:
        fact, label, ordered_mg = _order_fact(context.order, dose_inputs, terminology)
        add(fact, label, "context.order")
        if "dose_mg" not in fact:
            ordered_mg = None  # not believed: no dose is computed from it
        dose_inputs = attrs.evolve(dose_inputs, ordered_mg=ordered_mg)
    plan_fact = _plan_fact(context, dose_inputs)
    add(plan_fact, _plan_label(plan_fact), "context.plan")
    _apply_tables(tables, facts, patient_fact)

    # Last, so that every step above may have added to ``issues``.
    for fact, label in _quality_facts((*record.data_quality, *issues)):
        add(fact, label, "data_quality")

    ordered = tuple(facts[key] for key in sorted(facts))
    return FactSet(facts=ordered, labels=labels, dose_inputs=dose_inputs, quality=tuple(issues))


def _apply_tables(tables: Sequence[Table], facts: Mapping[str, Fact], patient: Fact) -> None:
    """Derive each table's output on matching facts, and its total on the patient fact."""
    for table in tables:
        values = {entry.valueset: entry.value for entry in table.entries}
        total: Decimal | None = None
        for fact in facts.values():
            if fact["t"] != table.fact or table.input not in fact:
                continue
            matched = sorted({values[vs] for vs in fact["vs"] if vs in values})
            if len(matched) != 1:
                continue  # no row, or rows that disagree: leave the value unknown
            given = Decimal(str(fact[table.input]))
            raw = given * matched[0] if table.operation == "multiply" else given / matched[0]
            value = (raw * table.scale).quantize(_HUNDREDTH, ROUND_HALF_EVEN)
            fact[table.output] = to_json_number(value)
            if fact.get("active", True):
                total = value if total is None else total + value
        if table.total and total is not None:
            patient[table.total] = to_json_number(total)


def _plan_fact(context: Context, dose_inputs: DoseInputs) -> Fact:
    fact: Fact = {"t": "plan", "id": "plan"}
    plan = context.plan
    if plan is None:
        return fact
    weight = dose_inputs.weight_kg
    mg, per_kg = plan.dose_mg, plan.dose_mg_per_kg
    if mg is None and per_kg is not None and weight is not None:
        mg = (per_kg * weight).quantize(_TENTH, ROUND_HALF_EVEN)
    if per_kg is None and mg is not None and weight is not None and weight > 0:
        per_kg = (mg / weight).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
    for name, value in (
        ("dose_mg", mg),
        ("dose_mg_per_kg", per_kg),
        ("sessions_per_week", plan.sessions_per_week),
    ):
        if value is not None:
            fact[name] = to_json_number(value)
    if plan.treatment_week is not None:
        fact["treatment_week"] = plan.treatment_week
    return fact


def _plan_label(fact: Fact) -> str:
    parts = []
    if "dose_mg" in fact:
        parts.append(f"{fact['dose_mg']} mg")
    if "dose_mg_per_kg" in fact:
        parts.append(f"{fact['dose_mg_per_kg']} mg/kg")
    if "sessions_per_week" in fact:
        parts.append(f"{fact['sessions_per_week']} sessions/week")
    if "treatment_week" in fact:
        parts.append(f"week {fact['treatment_week']}")
    return "planned session: " + (", ".join(parts) if parts else "no dose or schedule given")


def _quality_facts(issues: Iterable[DataQualityIssue]) -> list[tuple[Fact, str]]:
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
        times = f" ({len(messages)} times)" if len(messages) > 1 else ""
        where = f" {kind}:" if kind else ""
        out.append((fact, f"data quality {severity}{times}:{where} {sorted(messages)[0]}"))
    return out


def _order_fact(
    order: Order, dose_inputs: DoseInputs, terminology: Terminology
) -> tuple[Fact, str, Decimal | None]:
    fact: Fact = {
        "t": "order",
        "id": _fact_id("order", order),
        "vs": list(terminology.tag(order.code, order.name)),
        "drug": _drug_key(order.code, order.name),
    }
    parts = [f"ordered: {_describe(order.code, order.name)}"]
    dose_mg = None
    if order.dose is not None and order.unit is not None:
        dose_mg = _measure_dose(order.dose, order.unit, "context.order.unit")
        fact["dose_mg"] = to_json_number(dose_mg)
        parts.append(f"{order.dose} {order.unit}")
        if dose_inputs.weight_kg is not None and dose_inputs.weight_kg > 0:
            per_kg = (dose_mg / dose_inputs.weight_kg).quantize(_HUNDREDTH, ROUND_HALF_EVEN)
            fact["mg_per_kg"] = to_json_number(per_kg)
            parts.append(f"({per_kg} mg/kg)")
    else:
        parts.append("dose not stated")
    if order.per_week is not None:
        fact["per_week"] = to_json_number(order.per_week)
        parts.append(f"{order.per_week} times a week")
    return fact, " ".join(parts), dose_mg


def _measure_dose(value: Decimal, unit: str, path: str) -> Decimal:
    try:
        return convert(value, unit, "mg")
    except KetacdsError as error:
        raise InputError(path, str(error)) from None


def _stable_path(path: str, fact_id: str) -> str:
    """``medications[2]`` as ``medications[<id>]``: the item's own id (or content digest).

    So a data-quality entry never depends on the order of the input lists.
    """
    if not path.endswith("]") or "[" not in path:
        return path
    return f"{path.split('[', 1)[0]}[{fact_id.split(':', 1)[1]}]"


def _believed(
    validity: Validity | None,
    fact: str,
    field: str,
    value: Decimal,
    path: str,
    issues: list[DataQualityIssue],
    shown: str,
) -> bool:
    """Whether ``value`` is inside its plausible range; if not, report it (an error)."""
    declared = validity.range_of(fact, field) if validity is not None else None
    if declared is None or declared.plausible(value):
        return True
    issues.append(_implausible(declared, shown, path))
    return False


def _implausible(declared: ValidityRange, shown: str, path: str) -> DataQualityIssue:
    # No file:line here: an Assessment depends on the digest, never on the ruleset's layout.
    return DataQualityIssue(
        severity="error",
        code="implausible",
        message=(
            f"{shown} is outside the plausible range: {declared.bounds()} (rulesets/validity.yaml); "
            "it is not used."
        ),
        path=path,
    )


def _drop_implausible(fact: Fact, validity: Validity, path: str, issues: list[DataQualityIssue]) -> None:
    """Leave out every number field of ``fact`` outside its plausible range, and what came from it."""
    for field in sorted(fact):
        value = fact.get(field)
        if field in ("t", "id") or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not _believed(
            validity,
            fact["t"],
            field,
            Decimal(str(value)),
            f"{path}.{field}",
            issues,
            f"{fact['t']} {field} {value}",
        ):
            del fact[field]
            for derived in _DERIVED_FROM.get(fact["t"], {}).get(field, ()):
                fact.pop(derived, None)


def _hours(delta: dt.timedelta) -> Decimal:
    """A time difference in hours, exactly (no float)."""
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000
    return seconds / 3600


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
    shown = f"{shown} recorded {time.isoformat()}"
    if time > context.now + dt.timedelta(minutes=float(validity.future_minutes)):
        found.append(
            DataQualityIssue(
                severity="error",
                code="future-reading",
                message=f"{shown} is dated after the assessment time {context.now.isoformat()}; not used.",
                path=path,
            )
        )
        return False
    declared = validity.range_of("patient", field)
    hours = _hours(context.now - time)
    if declared is not None and declared.current_hours is not None and hours > declared.current_hours:
        found.append(
            DataQualityIssue(
                severity="info",
                code="stale-reading",
                message=f"{shown} is older than {declared.current_hours} hours, so not used as current.",
                path=path,
            )
        )
        return False
    return True


def _patient_fact(
    record: PatientRecord,
    context: Context,
    validity: Validity | None = None,
    issues: list[DataQualityIssue] | None = None,
) -> tuple[Fact, DoseInputs]:
    p = record.patient
    found: list[DataQualityIssue] = [] if issues is None else issues
    fact: Fact = {"t": "patient", "id": "patient"}
    age = _age(record, context.now)
    if age is not None and _believed(
        validity, "patient", "age_years", Decimal(age), "patient.age_years", found, f"Age {age} years"
    ):
        fact["age_years"] = age
    if p.sex is not None:
        fact["sex"] = p.sex
    weight = height = None
    if p.weight is not None and _current(
        p.weight.time,
        "weight_kg",
        f"Weight {p.weight.value} {p.weight.unit}",
        "patient.weight.time",
        validity,
        context,
        found,
    ):
        weight = _measure(p.weight.value, p.weight.unit, "patient.weight")[0]
        if not _believed(
            validity,
            "patient",
            "weight_kg",
            weight,
            "patient.weight",
            found,
            f"Weight {p.weight.value} {p.weight.unit}",
        ):
            weight = None
    if p.height is not None and _current(
        p.height.time,
        "height_cm",
        f"Height {p.height.value} {p.height.unit}",
        "patient.height.time",
        validity,
        context,
        found,
    ):
        height = _measure(p.height.value, p.height.unit, "patient.height")[0]
        if not _believed(
            validity,
            "patient",
            "height_cm",
            height,
            "patient.height",
            found,
            f"Height {p.height.value} {p.height.unit}",
        ):
            height = None
    if weight is not None and height is not None:
        if height <= 0:
            raise InputError("patient.height", "must be more than zero")
        bmi = weight / (height / 100) ** 2
        if _believed(
            validity,
            "patient",
            "bmi",
            bmi,
            "patient",
            found,
            f"The BMI of {p.weight.value} {p.weight.unit} and {p.height.value} {p.height.unit} "  # type: ignore[union-attr]
            f"({bmi.quantize(_TENTH, ROUND_HALF_EVEN)} kg/m2)",
        ):
            fact["bmi"] = to_json_number(bmi.quantize(_TENTH, ROUND_HALF_EVEN))
        else:
            # Weight and height do not belong together: neither is believed.
            weight = height = None
    if weight is not None:
        fact["weight_kg"] = to_json_number(weight.quantize(_HUNDREDTH, ROUND_HALF_EVEN))
    if height is not None:
        fact["height_cm"] = to_json_number(height.quantize(_TENTH, ROUND_HALF_EVEN))
    for name in ("pregnant", "lactating", "hepatic_class"):
        value = getattr(p, name)
        if value is not None:
            fact[name] = value
    if p.pregnant is not None:
        shown = f"Pregnancy status ({'pregnant' if p.pregnant else 'not pregnant'})"
        if not _current(
            p.pregnant_time, "pregnant", shown, "patient.pregnant_time", validity, context, found
        ):
            del fact["pregnant"]  # not current: unknown, so the pregnancy gap asks again
    if context.setting is not None:
        fact["setting"] = context.setting
    return fact, DoseInputs(weight_kg=weight, height_cm=height, sex=p.sex)


def _patient_label(fact: Fact) -> str:
    parts = [
        f"{fact['age_years']} y" if "age_years" in fact else "age unknown",
        fact.get("sex", "sex unknown"),
        f"{fact['weight_kg']} kg" if "weight_kg" in fact else "weight unknown",
    ]
    if "height_cm" in fact:
        parts.append(f"{fact['height_cm']} cm")
    if "bmi" in fact:
        parts.append(f"BMI {fact['bmi']}")
    return "patient: " + ", ".join(parts)


def _medication_fact(m: Medication, terminology: Terminology, path: str) -> tuple[Fact, str]:
    fact: Fact = {
        "t": "medication",
        "id": _fact_id("medication", m),
        "vs": list(terminology.tag(m.code, m.name)),
        "drug": _drug_key(m.code, m.name),
        "status": m.status,
        "active": m.status == "active",
        "as_needed": m.as_needed,
    }
    dose_text = ""
    if m.dose is not None and m.unit is not None:
        dose_mg = _measure_dose(m.dose, m.unit, f"{path}.unit")
        fact["dose_mg"] = to_json_number(dose_mg)
        dose_text = f" {m.dose} {m.unit}"
        if m.frequency_per_day is not None:
            fact["daily_mg"] = to_json_number(dose_mg * m.frequency_per_day)
    if m.frequency_per_day is not None:
        fact["frequency_per_day"] = to_json_number(m.frequency_per_day)
        dose_text += f" {m.frequency_per_day}/day"
    if m.as_needed:
        dose_text += " as needed"
    return fact, f"{_describe(m.code, m.name)}{dose_text} ({m.status})"


def _observation_facts(
    observations: Iterable[Observation],
    context: Context,
    terminology: Terminology,
    validity: Validity | None = None,
    issues: list[DataQualityIssue] | None = None,
) -> list[tuple[Fact, str, str]]:
    """One fact per observation value, or per component of a panel.

    A value outside its plausible range, or a reading timed after ``now`` (beyond the
    clock-skew tolerance), is reported as an error and its value left out; only timed,
    plausible readings inside their validity window may be the ``latest`` of their kind.
    Untimed and older readings stay as history (reported as ``info``).
    """
    found: list[DataQualityIssue] = [] if issues is None else issues
    skew = dt.timedelta(minutes=float(validity.future_minutes)) if validity is not None else dt.timedelta(0)
    rows: list[tuple[Fact, str, str, dt.datetime | None, bool]] = []
    for index, o in enumerate(observations):
        parts: list[tuple[str, Coding | None, str | None, Decimal, str | None, str]] = []
        parent = _fact_id("observation", o)
        # Data-quality entries name the item by its id, never its place in the list.
        path = _stable_path(f"observations[{index}]", parent)
        if o.value is not None:
            parts.append((parent, o.code, o.name, o.value, o.unit, path))
        for c_index, component in enumerate(o.components):
            child = f"{parent}/{_content_id('c', component).split(':')[1][:8]}"
            parts.append(
                (
                    child,
                    component.code,
                    component.name,
                    component.value,
                    component.unit,
                    f"{path}.components[{c_index}]",
                )
            )
        future = o.time is not None and o.time > context.now + skew
        if future:
            found.append(
                DataQualityIssue(
                    severity="error",
                    code="future-reading",
                    message=(
                        f"{_describe(o.code, o.name)} is dated {o.time.isoformat()}, after the "  # type: ignore[union-attr]
                        f"assessment time {context.now.isoformat()}; it is not used."
                    ),
                    path=f"{path}.time",
                )
            )
        built: list[tuple[Fact, str, str, bool]] = []
        for fact_id, code, name, value, unit, where in parts:
            # An input error names the item by its place, as every loader error does.
            measured, fact_unit = _measure(
                value, unit, f"{where.replace(path, f'observations[{index}]', 1)}.unit"
            )
            fact: Fact = {
                "t": "observation",
                "id": fact_id,
                "vs": list(terminology.tag(code, name)),
                "value": to_json_number(measured),
                "unit": fact_unit,
            }
            if o.time is not None:
                hours = Decimal((context.now - o.time).total_seconds()) / 3600
                fact["hours_ago"] = to_json_number(hours.quantize(_HUNDREDTH, ROUND_HALF_EVEN))
            when = f" at {o.time.isoformat()}" if o.time is not None else " (time not recorded)"
            shown = f"{_describe(code, name)} {value}{(' ' + unit) if unit else ''}"
            believed = not future and _plausible_reading(
                fact, measured, fact_unit, validity, shown, where, found
            )
            built.append((fact, f"{shown}{when}", where, believed))
        if validity is not None:
            built = _check_pairs(built, validity, found)
        for fact, label, where, believed in built:
            if not believed:
                del fact["value"]  # not believed: never compared, never the latest
            rows.append((fact, label, where, o.time, believed))
    _mark_latest(rows, validity, found, context.now)
    return [(fact, label, where) for fact, label, where, _, _ in rows]


def _plausible_reading(
    fact: Fact,
    value: Decimal,
    unit: str,
    validity: Validity | None,
    shown: str,
    where: str,
    found: list[DataQualityIssue],
) -> bool:
    """Whether a reading's value is inside the plausible range of every value set it is in."""
    if validity is None:
        return True
    for vs in fact["vs"]:
        declared = validity.range_of("observation", vs)
        if declared is None:
            continue
        compared = value
        if unit and declared.unit is not None:
            try:
                if canonical_unit(unit) != declared.unit:
                    compared = convert(value, unit, declared.unit)
            except KetacdsError:
                found.append(
                    DataQualityIssue(
                        severity="error",
                        code="implausible",
                        message=f"{shown} is not in {declared.unit}, the unit of {vs}; it is not used.",
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
                        DataQualityIssue(
                            severity="error",
                            code="implausible",
                            message=(
                                f"In one reading, {out[i][1]} is not below {out[j][1]} "
                                f"({pair.lower} must be below {pair.upper}); neither is used."
                            ),
                            path=out[i][2],
                        )
                    )
                    out[i] = (*out[i][:3], False)
                    out[j] = (*out[j][:3], False)
    return out


def _mark_latest(
    rows: list[tuple[Fact, str, str, dt.datetime | None, bool]],
    validity: Validity | None = None,
    found: list[DataQualityIssue] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Mark each reading that is the current one of every value set it belongs to.

    A reading is a candidate when it is believed (plausible, not in the future), timed,
    and inside the validity window of each of its value sets; the newest candidate is
    the latest. An untimed or older reading is never the latest: an older one is
    history (an ``info`` issue), an untimed one of a kind with a validity window is an
    error (it may be the newest), and rules needing a current value see a gap.
    """
    reported: list[DataQualityIssue] = [] if found is None else found
    candidates: list[tuple[Fact, dt.datetime]] = []
    for fact, label, where, moment, believed in rows:
        if not believed or not fact["vs"]:
            continue
        windows = [
            declared.current_hours
            for vs in fact["vs"]
            if validity is not None
            and (declared := validity.range_of("observation", vs)) is not None
            and declared.current_hours is not None
        ]
        if moment is None:
            # It cannot be placed in time, so it might be the newest: never the current
            # reading, and where the kind must be current an error (the status cannot
            # reassure while it stands; otherwise an older reading would speak for it).
            reported.append(
                DataQualityIssue(
                    severity="error" if windows else "info",
                    code="untimed-reading",
                    message=(
                        f"{label}: without a time it cannot be the current reading and may be newer "
                        "than any other; it is not used."
                    ),
                    path=where,
                )
            )
            continue
        # Exact age in hours (never the rounded ``hours_ago``), compared with the window.
        age = _hours(now - moment) if now is not None else Decimal(0)
        if windows and age > min(windows):
            reported.append(
                DataQualityIssue(
                    severity="info",
                    code="stale-reading",
                    message=(
                        f"{label}: older than {min(windows)} hours, so not the current reading; "
                        "shown as history."
                    ),
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
    chosen = {
        fact["id"]
        for fact, moment in candidates
        if fact["vs"] and all(newest[vs] <= moment for vs in fact["vs"])
    }
    for fact, *_ in rows:
        fact["latest"] = fact["id"] in chosen
