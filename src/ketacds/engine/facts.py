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

Numbers in facts are exact: an ``int`` when whole, else the ``Decimal`` itself (never
a float), and derived quantities (BMI, mg/kg, daily dose, hours since a reading,
diazepam-equivalents) are computed in a 120-digit Decimal context and never rounded:
rules compare them with their thresholds exactly (a quotient that does not
terminate is never equal to a finite threshold, and at 120 digits it cannot round
onto one for any input the readers accept). Rounding happens only in the labels
people read.

A field the input does not give is left out of the fact, never filled with a
default: rules test ``present: false`` to see a gap.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
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
    ObservationComponent,
    Order,
    PatientRecord,
)
from ketacds.models.quality import DataQualityIssue
from ketacds.ruleset.ir import Table, Validity, ValidityRange
from ketacds.terminology.valuesets import Terminology, normalise_name

__all__ = ["DISPLAY_QUANTA", "LONG_QUANTUM", "FactSet", "build_facts", "exact", "shown", "to_json_number"]

Fact = dict[str, Any]

_ACTIVE_CONDITION = ("active", "recurrence", "relapse")
# The unit each measured dimension is expressed in, inside facts.
_FACT_UNITS = {"mass": "kg", "length": "cm"}
_TENTH = Decimal("0.1")
_HUNDREDTH = Decimal("0.01")
_THOUSANDTH = Decimal("0.001")
#: How finely a derived quantity is shown to people (labels, explanations); facts keep
#: the exact value. Fields not listed are shown as written.
DISPLAY_QUANTA: dict[str, Decimal] = {
    "weight_kg": _HUNDREDTH,
    "height_cm": _TENTH,
    "bmi": _TENTH,
    "mg_per_kg": _HUNDREDTH,
    "dose_mg_per_kg": _THOUSANDTH,
    "hours_ago": _HUNDREDTH,
    "daily_mg": _HUNDREDTH,
}
#: Any other number with more than 6 decimal places (a quotient, such as a table's
#: diazepam-equivalents) is shown to this quantum when it is 1 or more.
LONG_QUANTUM = _HUNDREDTH
_OUT_OF_RANGE = "{} is beyond the 120 significant digits ketacds computes with exactly"
#: The arithmetic of derived quantities: enough digits that no comparison is decided by
#: rounding, and the usual traps (a NaN or an overflow is an error, never a value).
_EXACT = decimal.Context(
    prec=120,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
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
    #: For a total a conversion table set on the patient: the ids of the facts summed
    #: (``{patient id: {field: (fact ids)}}``), which explain a finding on that total.
    totals: dict[str, dict[str, tuple[str, ...]]] = attrs.field(factory=dict)

    def by_id(self) -> dict[str, Fact]:
        """Return the facts keyed by id."""
        return {fact["id"]: fact for fact in self.facts}


def to_json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number for output (CDS Hooks cards): int when whole, else float.

    Not for facts: facts carry exact values (:func:`exact`).
    """
    return int(value) if value == value.to_integral_value() else float(value)


def exact(value: Decimal | int) -> int | Decimal:
    """A number as a fact carries it: ``int`` when whole (and of a sane size), else the Decimal."""
    if isinstance(value, int):
        return value
    if value == value.to_integral_value() and value.adjusted() < 18:
        return int(value)
    return value


def shown(value: Decimal | int | float, quantum: Decimal) -> str:
    """A number for a label: rounded to ``quantum`` (half even), fixed point, no trailing zeros.

    A number too large to be written to ``quantum`` in 120 digits is shown as it is.
    """
    try:
        rounded = Decimal(value).quantize(quantum, ROUND_HALF_EVEN, context=_EXACT)
    except decimal.InvalidOperation:
        return str(value)
    if rounded == rounded.to_integral_value():
        return format(rounded.quantize(Decimal(1), context=_EXACT), "f")
    return format(rounded.normalize(_EXACT), "f")


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


def _component_id(parent: str, component: ObservationComponent) -> str:
    """The fact id of one component of a panel observation (from its own content)."""
    return f"{parent}/{_content_id('c', component).split(':')[1][:8]}"


def _observation_items(observations: Sequence[Observation]) -> dict[str, tuple[Coding | None, str | None]]:
    """The code and name of each observation (and panel component), by the id of its fact."""
    items: dict[str, tuple[Coding | None, str | None]] = {}
    for o in observations:
        parent = _fact_id("observation", o)
        items[parent] = (o.code, o.name)
        for component in o.components:
            child = _component_id(parent, component)
            items[child] = (component.code, component.name)
    return items


def _ingredient_key(terminology: Terminology, code: Coding | None, name: str | None) -> str:
    """One drug, one key: the ingredient when the value sets name exactly one, else the name or code.

    So a brand and its generic (``Zoloft``, ``sertraline 100 mg``) are one drug.
    """
    ingredients = terminology.ingredients(code, name)
    return f"ingredient:{ingredients[0]}" if len(ingredients) == 1 else _drug_key(code, name)


def _code_text(code: Coding | None, name: str | None) -> str:
    """The item as the record gives it: its name and/or its code, for a data-quality message."""
    parts = []
    if name:
        parts.append(repr(name))
    if code is not None:
        system = _SYSTEM_NAMES.get(code.system, code.system)
        shown = f" {code.display!r}" if code.display and code.display != name else ""
        parts.append(f"{system} {code.code}{shown}")
    return " / ".join(parts) or "(no code or name)"


# Separators between the ingredients of a combination product's name.
_COMBINATION = re.compile(r"\s*/\s*|\s+and\s+|\s*\+\s*|\s*&\s*", re.IGNORECASE)
# A strength written as a ratio of units ("0.1 mg/mL", "20 MG/ML", "5 mcg/actuation",
# "10 mg/24 hr"): its slash is not a separator between ingredients.
_UNIT_RATIO = re.compile(
    r"(?<=\d)(\s*(?:mg|mcg|µg|ug|g|mmol|meq|units?|unt|iu|%)\s*)/(?=\s*(?:\d[\d.,]*\s*)?"
    r"(?:ml|l|actuat(?:ion)?|sprays?|doses?|hr|h|hours?|kg|days?|m2|puffs?)\b)",
    re.IGNORECASE,
)

# The resource type named in a data-quality entry, per fact type.
_RESOURCE_KINDS = {
    "condition": "Condition",
    "medication": "Medication",
    "trial": "AntidepressantTrial",
    "allergy": "Allergy",
    "substance": "SubstanceUse",
    "order": "Order",
}

_SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC",
    "http://loinc.org": "LOINC",
}


@attrs.define
class _Recognition:
    """Reports every item no value set a rule reads (nor a ``known`` list) recognises.

    Severity follows what an unseen item could hide: an active medication, current
    substance use, or an active condition whose text names a concept a rule reads is an
    ``error`` (the ruleset's KCDS-GAP-013 then keeps the status from being reassuring);
    another active condition or allergy a ``warning``; anything inactive, an
    observation or a trial that is not an antidepressant ``info``.
    """

    terminology: Terminology
    issues: list[DataQualityIssue]
    reported: set[tuple[str, str | None]]
    _observations: dict[str, int] = attrs.field(factory=dict)

    def _add(self, severity: str, code: str, message: str, where: tuple[str, str] | str) -> None:
        """Report one issue; ``where`` is (fact id, input list), or an input list alone.

        The item is named by its id, never by its position, so that permuting an input list
        never changes the Assessment.
        """
        resource = None
        if isinstance(where, tuple):
            fact_id, where = where
            kind, own = fact_id.split(":", 1)
            resource = own if "/" in own else f"{_RESOURCE_KINDS[kind]}/{own}"
        self.issues.append(
            DataQualityIssue(severity=severity, code=code, message=message, resource=resource, path=where)  # type: ignore[arg-type]
        )

    def _named(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        text = " ".join(t for t in (name, code.display if code else None) if t)
        return self.terminology.concepts_named(text) if text else ()

    def _concepts(self, ids: tuple[str, ...]) -> str:
        return ", ".join(self.terminology.titles.get(i, i) for i in ids)

    def condition(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool, where: tuple[str, str]
    ) -> None:
        if self.terminology.is_read(tags, "condition"):
            return
        what = f"Condition {_code_text(code, name)} is in no value set the rules read"
        named = self._named(code, name)
        if active and named:
            self._add(
                "error",
                "unrecognised-condition",
                f"{what}, but its text names {self._concepts(named)}: it may be a contraindication the rules "
                "cannot see.",
                where,
            )
        elif active:
            self._add("warning", "unrecognised-condition", f"{what}; no rule assessed it.", where)
        else:
            self._add("info", "unrecognised-condition", f"{what} (not active).", where)

    def medication(
        self,
        code: Coding | None,
        name: str | None,
        item_id: str | None,
        tags: list[str],
        active: bool,
        where: tuple[str, str],
    ) -> None:
        if ("unmapped-medication", item_id) in self.reported:
            return
        read = self.terminology.is_read(tags, "medication")
        unread = self._unread_parts(name) if read else [name] if name else []
        if read and not unread:
            return
        what = f"Medication {_code_text(code, name)} is in no value set the rules read"
        if unread and unread != [name]:
            parts = ", ".join(map(repr, unread))
            what = f"Medication {_code_text(code, name)}: {parts} is in no value set the rules read"
        if active:
            self._add(
                "error",
                "unrecognised-medication",
                f"{what}, so its interactions are unknown.",
                where,
            )
        else:
            self._add("info", "unrecognised-medication", f"{what} (not active).", where)

    def _unread_parts(self, name: str | None) -> list[str]:
        """The ingredients of a combination name (``A / B``, ``A and B``, ``A + B``) that nothing reads.

        A known or read ingredient never vouches for the others: in
        ``"Acetaminophen / Newdrug 5 MG"`` the unknown part is still unseen. A part with
        no word of four letters or more (a unit such as ``ML``) is not an ingredient.
        """
        parts = [p.strip() for p in _COMBINATION.split(_UNIT_RATIO.sub(r"\1 per ", name or ""))]
        if len(parts) < 2:
            return []
        return [
            p
            for p in parts
            if re.search(r"[A-Za-z]{4,}", p)
            and not self.terminology.is_read(self.terminology.tag_text(None, p), "medication")
        ]

    def substance(
        self, code: Coding | None, name: str | None, tags: list[str], status: str, where: tuple[str, str]
    ) -> None:
        if self.terminology.is_read(tags, "substance"):
            return
        what = f"Substance use {_code_text(code, name)} ({status}) is in no value set the rules read"
        severity = {"current": "error", "former": "warning"}.get(status, "info")
        self._add(severity, "unrecognised-substance", f"{what}; no rule assessed it.", where)

    def allergy(
        self, code: Coding | None, name: str | None, tags: list[str], active: bool, where: tuple[str, str]
    ) -> None:
        if self.terminology.is_read(tags, "allergy"):
            return
        what = f"Allergy {_code_text(code, name)} is in no value set the rules read"
        self._add(
            "warning" if active else "info", "unrecognised-allergy", f"{what}; no rule assessed it.", where
        )

    def trial(self, code: Coding | None, name: str | None, tags: list[str], where: tuple[str, str]) -> None:
        if self.terminology.is_read(tags, "trial"):
            return
        self._add(
            "info",
            "unrecognised-trial",
            f"Treatment trial {_code_text(code, name)} is not an antidepressant the rules know; "
            "it is not counted.",
            where,
        )

    def order(self, code: Coding | None, name: str | None, tags: list[str], where: tuple[str, str]) -> None:
        if self.terminology.is_read(tags, "order"):
            return
        self._add(
            "error",
            "unrecognised-order",
            f"The ordered drug {_code_text(code, name)} is in no value set the order rules read, "
            "so its dose is not checked.",
            where,
        )

    def observation(self, code: Coding | None, name: str | None, tags: list[str]) -> None:
        """Remembered per kind (code or name): one entry per kind, with its count, at :meth:`finish`."""
        if self.terminology.is_read(tags, "observation"):
            return
        self._observations[_code_text(code, name)] = self._observations.get(_code_text(code, name), 0) + 1

    def finish(self) -> None:
        """Report the unread observations, one entry per kind."""
        for what, count in sorted(self._observations.items()):
            times = f" ({count} readings)" if count > 1 else ""
            self._add(
                "info",
                "unrecognised-observation",
                f"Observation {what}{times} is in no value set the rules read.",
                "observations",
            )


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
    except decimal.DecimalException:
        raise InputError(path.removesuffix(".unit"), _OUT_OF_RANGE.format(value)) from None


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
    with decimal.localcontext(_EXACT):
        return _build_facts(record, context, terminology, tables, validity)


def _build_facts(
    record: PatientRecord,
    context: Context,
    terminology: Terminology,
    tables: Sequence[Table],
    validity: Validity | None,
) -> FactSet:
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

    # Items already reported unreadable by the reader (e.g. FHIR unmapped-medication).
    reported = {(i.code, i.resource) for i in record.data_quality}
    seen = _Recognition(terminology, issues, reported)

    # One source item read as several (a FHIR Condition coded in two systems: ids ``key#0``,
    # ``key#1``) is seen when any of its codes is read.
    read_sources = {
        c.id.split("#", 1)[0]
        for c in record.conditions
        if c.id and "#" in c.id and terminology.is_read(terminology.tag(c.code, c.name), "condition")
    }

    for index, c in enumerate(record.conditions):
        fact: Fact = {
            "t": "condition",
            "id": _fact_id("condition", c),
            "vs": list(terminology.tag(c.code, c.name)),
            "clinical_status": c.clinical_status,
            "active": c.clinical_status in _ACTIVE_CONDITION,
        }
        if not (c.id and "#" in c.id and c.id.split("#", 1)[0] in read_sources):
            seen.condition(c.code, c.name, fact["vs"], fact["active"], (fact["id"], "conditions"))
        if c.onset is not None:
            fact["onset_days_ago"] = (context.now.date() - c.onset).days
        add(fact, f"{_describe(c.code, c.name)} ({c.clinical_status})", f"conditions[{index}]")

    for index, m in enumerate(record.medications):
        fact, label = _medication_fact(m, terminology, f"medications[{index}]")
        seen.medication(m.code, m.name, m.id, fact["vs"], fact["active"], (fact["id"], "medications"))
        add(fact, label, f"medications[{index}]")

    for index, t in enumerate(record.trials):
        path = f"trials[{index}]"
        fact = {
            "t": "trial",
            "id": _fact_id("trial", t),
            "vs": list(terminology.tag_text(t.code, t.name)),
            "drug": _ingredient_key(terminology, t.code, t.name),
            "response": t.response,
            "episode": t.episode,
        }
        if t.dose is not None and t.unit is not None:
            fact["dose_mg"] = exact(_measure_dose(t.dose, t.unit, f"{path}.unit"))
        if t.weeks is not None:
            fact["weeks"] = exact(t.weeks)
        if t.adequate_dose is not None:
            fact["adequate_dose"] = t.adequate_dose
        weeks = f", {t.weeks} weeks" if t.weeks is not None else ""
        label = f"{_describe(t.code, t.name)} trial ({t.episode} episode{weeks}, response {t.response})"
        seen.trial(t.code, t.name, fact["vs"], (fact["id"], "trials"))
        add(fact, label, path)

    for index, a in enumerate(record.allergies):
        fact = {
            "t": "allergy",
            "id": _fact_id("allergy", a),
            "vs": list(terminology.tag_text(a.code, a.name)),
            "active": a.status == "active",
        }
        siblings = [
            b
            for b in record.allergies
            if a.id and "#" in a.id and b.id and b.id.split("#")[0] == a.id.split("#")[0]
        ]
        if not any(terminology.is_read(terminology.tag_text(b.code, b.name), "allergy") for b in siblings):
            seen.allergy(a.code, a.name, fact["vs"], fact["active"], (fact["id"], "allergies"))
        add(fact, f"allergy: {_describe(a.code, a.name)} ({a.status})", f"allergies[{index}]")

    for index, s in enumerate(record.substance_use):
        fact = {
            "t": "substance",
            "id": _fact_id("substance", s),
            "vs": list(terminology.tag_text(s.code, s.name)),
            "status": s.status,
        }
        seen.substance(s.code, s.name, fact["vs"], s.status, (fact["id"], "substance_use"))
        add(fact, f"substance use: {_describe(s.code, s.name)} ({s.status})", f"substance_use[{index}]")

    observed = _observation_items(record.observations)
    for fact, label, path in _observation_facts(record.observations, context, terminology, validity, issues):
        seen.observation(*observed[fact["id"]], fact["vs"])
        add(fact, label, path)
    seen.finish()

    if context.order is not None:
        fact, label, ordered_mg = _order_fact(context.order, dose_inputs, terminology)
        seen.order(context.order.code, context.order.name, fact["vs"], (fact["id"], "context.order"))
        add(fact, label, "context.order")
        if "dose_mg" not in fact:
            ordered_mg = None  # not believed: no dose is computed from it
        dose_inputs = attrs.evolve(dose_inputs, ordered_mg=ordered_mg)
    plan_fact = _plan_fact(context, dose_inputs)
    add(plan_fact, _plan_label(plan_fact), "context.plan")
    totals = _apply_tables(tables, facts, patient_fact, labels)

    # Last, so that every step above may have added to ``issues``.
    for fact, label in _quality_facts((*record.data_quality, *issues)):
        add(fact, label, "data_quality")

    ordered = tuple(facts[key] for key in sorted(facts))
    return FactSet(
        facts=ordered, labels=labels, dose_inputs=dose_inputs, quality=tuple(issues), totals=totals
    )


def _apply_tables(
    tables: Sequence[Table], facts: Mapping[str, Fact], patient: Fact, labels: dict[str, str]
) -> dict[str, dict[str, tuple[str, ...]]]:
    """Derive each table's output on matching facts, and its total on the patient fact.

    A fact given an output has the table's ``label`` added to its label (the figure and
    the table it came from); the ids of the facts summed into a total are returned.
    """
    totals: dict[str, dict[str, tuple[str, ...]]] = {}
    for table in tables:
        values = {entry.valueset: entry.value for entry in table.entries}
        total: Decimal | None = None
        summed: list[str] = []
        for fact in facts.values():
            if fact["t"] != table.fact or table.input not in fact:
                continue
            matched = sorted({values[vs] for vs in fact["vs"] if vs in values})
            if len(matched) != 1:
                continue  # no row, or rows that disagree: leave the value unknown
            given = Decimal(fact[table.input])
            raw = given * matched[0] if table.operation == "multiply" else given / matched[0]
            value = raw * table.scale  # exact: rules compare it, labels round it
            fact[table.output] = exact(value)
            if table.label is not None:
                shown_in, shown_out = shown(fact[table.input], _TENTH), shown(fact[table.output], _TENTH)
                labels[fact["id"]] += "; " + table.label.format(input=shown_in, output=shown_out)
            if fact.get("active", True):
                total = value if total is None else total + value
                summed.append(fact["id"])
        if table.total and total is not None:
            patient[table.total] = exact(total)
            totals.setdefault(patient["id"], {})[table.total] = tuple(sorted(summed))
    return totals


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
        "vs": list(terminology.tag_text(order.code, order.name)),
        "drug": _drug_key(order.code, order.name),
    }
    parts = [f"ordered: {_describe(order.code, order.name)}"]
    dose_mg = None
    if order.dose is not None and order.unit is not None:
        dose_mg = _measure_dose(order.dose, order.unit, "context.order.unit")
        fact["dose_mg"] = exact(dose_mg)
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


def _measure_dose(value: Decimal, unit: str, path: str) -> Decimal:
    try:
        return convert(value, unit, "mg")
    except KetacdsError as error:
        raise InputError(path, str(error)) from None
    except decimal.DecimalException:
        raise InputError(path.removesuffix(".unit"), _OUT_OF_RANGE.format(value)) from None


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
        if field in ("t", "id") or isinstance(value, bool) or not isinstance(value, int | Decimal):
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
    # Compared as a difference: ``now + skew`` would overflow for a ``now`` near year 9999.
    if time - context.now > dt.timedelta(minutes=float(validity.future_minutes)):
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
            fact["bmi"] = exact(bmi)
        else:
            # Weight and height do not belong together: neither is believed.
            weight = height = None
    if weight is not None:
        fact["weight_kg"] = exact(weight)
    if height is not None:
        fact["height_cm"] = exact(height)
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
        f"{shown(fact['weight_kg'], _HUNDREDTH)} kg" if "weight_kg" in fact else "weight unknown",
    ]
    if "height_cm" in fact:
        parts.append(f"{shown(fact['height_cm'], _TENTH)} cm")
    if "bmi" in fact:
        parts.append(f"BMI {shown(fact['bmi'], _TENTH)}")
    return "patient: " + ", ".join(parts)


def _medication_fact(m: Medication, terminology: Terminology, path: str) -> tuple[Fact, str]:
    fact: Fact = {
        "t": "medication",
        "id": _fact_id("medication", m),
        "vs": list(terminology.tag_text(m.code, m.name)),
        "drug": _drug_key(m.code, m.name),
        "status": m.status,
        "active": m.status == "active",
        "as_needed": m.as_needed,
    }
    dose_text = ""
    if m.dose is not None and m.unit is not None:
        dose_mg = _measure_dose(m.dose, m.unit, f"{path}.unit")
        fact["dose_mg"] = exact(dose_mg)
        dose_text = f" {m.dose} {m.unit}"
        if m.frequency_per_day is not None:
            fact["daily_mg"] = exact(dose_mg * m.frequency_per_day)
    if m.frequency_per_day is not None:
        fact["frequency_per_day"] = exact(m.frequency_per_day)
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
            child = _component_id(parent, component)
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
        future = o.time is not None and o.time - context.now > skew  # a difference never overflows
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
                "value": exact(measured),
                "unit": fact_unit,
            }
            if o.time is not None:
                elapsed = context.now - o.time  # exact: no float seconds
                seconds = (
                    Decimal(elapsed.days * 86400 + elapsed.seconds) + Decimal(elapsed.microseconds) / 10**6
                )
                fact["hours_ago"] = exact(seconds / 3600)
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
