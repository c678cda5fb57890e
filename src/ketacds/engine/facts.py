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

This module holds :class:`FactSet` and :func:`build_facts`, which runs the steps in
order; the steps live by job in ``fact_builders`` (one builder per kind of item),
``readings`` (plausibility and time windows), ``recognition`` (unrecognised items),
``identity`` (fact ids and descriptions) and ``numbers`` (exact numbers and how they
are shown; ``exact``, ``shown``, ``to_json_number``, ``DISPLAY_QUANTA`` and
``LONG_QUANTUM`` are re-exported here). Names with a leading underscore are shared
only among these modules; they are not API.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from decimal import Decimal

import attrs

from ketacds.dosing.functions import DoseInputs
from ketacds.engine.fact_builders import (
    _dose_in_mg,
    _medication_fact,
    _new_dose_inputs,
    _observation_facts,
    _order_fact,
    _patient_fact,
    _patient_label,
    _plan_fact,
    _plan_label,
    _quality_facts,
)
from ketacds.engine.identity import (
    Fact,
    _describe,
    _fact_id,
    _ingredient_key,
)
from ketacds.engine.labels import Labels, _Label, _text
from ketacds.engine.numbers import (
    _EXACT,
    _TENTH,
    DISPLAY_QUANTA,
    LONG_QUANTUM,
    exact,
    shown,
    to_json_number,
)
from ketacds.engine.readings import _drop_implausible
from ketacds.engine.recognition import _combination_parts, _Recognition
from ketacds.errors import InputError
from ketacds.models.inputs import (
    AntidepressantTrial,
    Coding,
    Context,
    PatientRecord,
)
from ketacds.models.quality import DataQualityIssue
from ketacds.models.trusted import trusted_constructor
from ketacds.ruleset.ir import Table, Validity, ValidityRange
from ketacds.terminology.valuesets import Terminology

__all__ = ["DISPLAY_QUANTA", "LONG_QUANTUM", "FactSet", "build_facts", "exact", "shown", "to_json_number"]

_ACTIVE_CONDITION = ("active", "recurrence", "relapse")
_NOTHING_CHECKED: Mapping[str, tuple[frozenset[str], tuple[tuple[str, ValidityRange], ...]]] = {}


@attrs.frozen
class FactSet:
    """The facts of one assessment, in a canonical order (sorted by id).

    ``quality`` holds what building the facts found it could not read as given (an
    unknown code or name, an implausible, future, stale or untimed value): reported in
    the Assessment beside the record's own ``data_quality``, and, for errors and
    warnings, asserted as ``quality`` facts the rules see.
    """

    facts: tuple[Fact, ...]
    #: The label of each fact by id (a read-only mapping; each written on first read).
    labels: Mapping[str, str]
    dose_inputs: DoseInputs
    quality: tuple[DataQualityIssue, ...] = ()
    #: For a total a conversion table set on the patient: the ids of the facts summed
    #: (``{patient id: {field: (fact ids)}}``), which explain a finding on that total.
    totals: dict[str, dict[str, tuple[str, ...]]] = attrs.field(factory=dict)

    def by_id(self) -> dict[str, Fact]:
        """Return the facts keyed by id."""
        return {fact["id"]: fact for fact in self.facts}


#: Builds a :class:`FactSet` from every field in order (facts, labels, dose_inputs,
#: quality, totals) without attrs' keyword handling: it has no validators to skip.
_new_fact_set = trusted_constructor(FactSet)


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
    labels: dict[str, _Label] = {}  # as built: written when read (ketacds.engine.labels)
    # What this function finds it cannot read as given; each step appends here.
    issues: list[DataQualityIssue] = []

    # Per fact type with plausible ranges: the fields they are on, and the ranges.
    checked = validity.checked_on() if validity is not None else _NOTHING_CHECKED

    def add(fact: Fact, label: _Label, path: _Label) -> None:
        # ``path`` as a label is: a text, or written only when something is reported.
        kind = fact["t"]
        check = checked.get(kind)
        if check is not None and kind != "patient" and not check[0].isdisjoint(fact):
            _drop_implausible(fact, check[1], path, issues)
        fact_id = fact["id"]
        existing = facts.get(fact_id)
        if existing is not None and existing != fact:
            raise InputError(_text(path), f"id {fact_id.split(':', 1)[1]!r} is used by two different items")
        facts[fact_id] = fact
        labels[fact_id] = label

    # Fact types ``add`` checks for ranged fields (conditions, allergies and substance use
    # have none in rulesets/validity.yaml: their facts are stored directly).
    condition_checked, allergy_checked = "condition" in checked, "allergy" in checked
    substance_checked = "substance" in checked

    patient_fact, dose_inputs = _patient_fact(record, context, validity, issues)
    # A label describes its fact as built: a copy, since later steps add to the fact.
    add(patient_fact, (_patient_label, patient_fact.copy()), "patient")

    # Items already reported unreadable by the reader (e.g. FHIR unmapped-medication).
    reported = {(i.code, i.resource) for i in record.data_quality}
    seen = _Recognition(terminology, issues, reported)
    tag, tag_text = terminology.tag, terminology.tag_text
    # An item in one of these is seen; only another goes to ``seen`` (whose methods test
    # ``terminology.is_read`` first, the same test).
    conditions_seen, trials_seen = terminology.seen_on("condition"), terminology.seen_on("trial")
    allergies_seen, substances_seen = terminology.seen_on("allergy"), terminology.seen_on("substance")

    # One source item read as several (a FHIR Condition coded in two systems: ids ``key#0``,
    # ``key#1``) is seen when any of its codes is read.
    read_sources = {
        c.id.split("#", 1)[0]
        for c in record.conditions
        if c.id and "#" in c.id and terminology.is_read(tag(c.code, c.name), "condition")
    }

    today = context.now.date()
    for index, c in enumerate(record.conditions):
        code, name, status, own = c.code, c.name, c.clinical_status, c.id
        fact_id = _fact_id("condition", c)
        active = status in _ACTIVE_CONDITION
        fact: Fact = {
            "t": "condition",
            "id": fact_id,
            "vs": list(tag(code, name)),
            "clinical_status": status,
            "active": active,
        }
        if not (own and "#" in own and own.split("#", 1)[0] in read_sources) and conditions_seen.isdisjoint(
            fact["vs"]
        ):
            seen.condition(code, name, fact["vs"], active, (fact_id, "conditions"))
        if c.onset is not None:
            fact["onset_days_ago"] = (today - c.onset).days
        if condition_checked or fact_id in facts:  # else what ``add`` would do, without the call
            add(fact, (_condition_label, code, name, status), (_place, "conditions", index))
        else:
            facts[fact_id] = fact
            labels[fact_id] = (_condition_label, code, name, status)

    for index, m in enumerate(record.medications):
        path = (_place, "medications", index)  # written only when an error names it
        fact, label = _medication_fact(m, terminology, path)
        seen.medication(m.code, m.name, m.id, fact["vs"], fact["active"], (fact["id"], "medications"))
        add(fact, label, path)

    for index, t in enumerate(record.trials):
        code, name, weeks = t.code, t.name, t.weeks
        fact_id = _fact_id("trial", t)
        parts = _combination_parts(name) if name else ()
        fact = {
            "t": "trial",
            "id": fact_id,
            "vs": list(tag_text(code, name)),
            "drug": _ingredient_key(terminology, code, name, parts),
            "response": t.response,
            "episode": t.episode,
        }
        if t.dose is not None and t.unit is not None:
            fact["dose_mg"] = _dose_in_mg(t.dose, t.unit, (_place, "trials", index), ".unit")[1]
        if weeks is not None:
            fact["weeks"] = exact(weeks)
        if t.adequate_dose is not None:
            fact["adequate_dose"] = t.adequate_dose
        if parts or name is None or trials_seen.isdisjoint(fact["vs"]):
            seen.trial(code, name, fact["vs"], (fact_id, "trials"))
        add(fact, (_trial_label, t), (_place, "trials", index))

    for index, a in enumerate(record.allergies):
        code, name, own = a.code, a.name, a.id
        fact_id = _fact_id("allergy", a)
        active = a.status == "active"
        fact = {"t": "allergy", "id": fact_id, "vs": list(tag_text(code, name)), "active": active}
        # Like conditions: one source allergy read as several (ids ``key#0``, ``key#1``).
        source = own.split("#")[0] if own and "#" in own else None
        if allergies_seen.isdisjoint(fact["vs"]) and (
            source is None
            or not any(
                terminology.is_read(tag_text(b.code, b.name), "allergy")
                for b in record.allergies
                if b.id and b.id.split("#")[0] == source
            )
        ):
            seen.allergy(code, name, fact["vs"], active, (fact_id, "allergies"))
        if allergy_checked or fact_id in facts:  # else what ``add`` would do, without the call
            add(fact, (_allergy_label, code, name, a.status), (_place, "allergies", index))
        else:
            facts[fact_id] = fact
            labels[fact_id] = (_allergy_label, code, name, a.status)

    for index, s in enumerate(record.substance_use):
        code, name, use = s.code, s.name, s.status
        fact_id = _fact_id("substance", s)
        fact = {"t": "substance", "id": fact_id, "vs": list(tag_text(code, name)), "status": use}
        if substances_seen.isdisjoint(fact["vs"]):
            seen.substance(code, name, fact["vs"], use, (fact_id, "substance_use"))
        if substance_checked or fact_id in facts:  # else what ``add`` would do, without the call
            add(fact, (_substance_label, code, name, use), (_place, "substance_use", index))
        else:
            facts[fact_id] = fact
            labels[fact_id] = (_substance_label, code, name, use)

    observations, observed = _observation_facts(record.observations, context, terminology, validity, issues)
    observations_seen = terminology.seen_on("observation")
    # The keys ``add`` checks on an observation fact (its ranges are by value set, so
    # normally none of its fields): a fact without one is stored here directly.
    ranged_keys = checked["observation"][0] if "observation" in checked else frozenset()
    for row in observations:
        fact = row[0]
        fact_id = fact["id"]
        if observations_seen.isdisjoint(fact["vs"]):
            code, name, of_code, of_name = observed[fact_id]
            seen.observation(code, name, fact["vs"], of_code, of_name)
        if fact_id in facts or not ranged_keys.isdisjoint(fact):
            add(fact, row[1], row[2])
        else:
            facts[fact_id] = fact
            labels[fact_id] = row[1]
    seen.finish()

    if context.order is not None:
        fact, label, ordered_mg = _order_fact(context.order, dose_inputs, terminology)
        seen.order(context.order.code, context.order.name, fact["vs"], (fact["id"], "context.order"))
        add(fact, label, "context.order")
        if "dose_mg" not in fact:
            ordered_mg = None  # not believed: no dose is computed from it
        # attrs.evolve(dose_inputs, ordered_mg=ordered_mg), without its keyword handling
        weight, height, sex = dose_inputs.weight_kg, dose_inputs.height_cm, dose_inputs.sex
        dose_inputs = _new_dose_inputs(weight, height, sex, ordered_mg)
    plan_fact = _plan_fact(context, dose_inputs)
    add(plan_fact, (_plan_label, plan_fact.copy()), "context.plan")
    totals = _apply_tables(tables, facts, patient_fact, labels)

    # Last, so that every step above may have added to ``issues``.
    for fact, label in _quality_facts((*record.data_quality, *issues)):
        add(fact, label, "data_quality")

    ordered = tuple([facts[key] for key in sorted(facts)])
    return _new_fact_set(ordered, Labels(labels), dose_inputs, tuple(issues), totals)


def _place(kind: str, index: int) -> str:
    """An item's place in its input list (``conditions[2]``), for an input error."""
    return f"{kind}[{index}]"


def _condition_label(code: Coding | None, name: str | None, status: str) -> str:
    return f"{_describe(code, name)} ({status})"


def _trial_label(t: AntidepressantTrial) -> str:
    how_long = f", {t.weeks} weeks" if t.weeks is not None else ""
    return f"{_describe(t.code, t.name)} trial ({t.episode} episode{how_long}, response {t.response})"


def _allergy_label(code: Coding | None, name: str | None, status: str) -> str:
    return f"allergy: {_describe(code, name)} ({status})"


def _substance_label(code: Coding | None, name: str | None, use: str) -> str:
    return f"substance use: {_describe(code, name)} ({use})"


def _table_label(label: _Label, template: str, given: Decimal | int, output: Decimal | int) -> str:
    """A label with a table's figure after it (the table's ``label``, e.g. diazepam equivalents)."""
    return _text(label) + "; " + template.format(input=shown(given, _TENTH), output=shown(output, _TENTH))


def _apply_tables(
    tables: Sequence[Table], facts: Mapping[str, Fact], patient: Fact, labels: dict[str, _Label]
) -> dict[str, dict[str, tuple[str, ...]]]:
    """Derive each table's output on matching facts, and its total on the patient fact.

    A fact given an output has the table's ``label`` added to its label (the figure and
    the table it came from); the ids of the facts summed into a total are returned.
    """
    totals: dict[str, dict[str, tuple[str, ...]]] = {}
    for table in tables:
        values = table.values  # the table's rows by value set
        kind, given_field = table.fact, table.input
        total: Decimal | None = None
        summed: list[str] = []
        for fact in facts.values():
            if fact["t"] != kind or given_field not in fact or values.keys().isdisjoint(fact["vs"]):
                continue  # (a fact in no row's value set matches no row)
            matched = sorted({values[vs] for vs in fact["vs"] if vs in values})
            if len(matched) != 1:
                continue  # no row, or rows that disagree: leave the value unknown
            given = Decimal(fact[table.input])
            raw = given * matched[0] if table.operation == "multiply" else given / matched[0]
            value = raw * table.scale  # exact: rules compare it, labels round it
            fact[table.output] = exact(value)
            if table.label is not None:
                fact_id = fact["id"]
                given, output = fact[table.input], fact[table.output]
                labels[fact_id] = (_table_label, labels[fact_id], table.label, given, output)
            if fact.get("active", True):
                total = value if total is None else total + value
                summed.append(fact["id"])
        if table.total and total is not None:
            patient[table.total] = exact(total)
            totals.setdefault(patient["id"], {})[table.total] = tuple(sorted(summed))
    return totals
