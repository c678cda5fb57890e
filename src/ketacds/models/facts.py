"""The fact vocabulary: which fact types rules may match, and their fields.

A patient record becomes a handful of flat facts (``engine/facts.py``); a ruleset's
conversion tables (``rulesets/tables/``) may add number fields (see
:func:`ketacds.ruleset.load.fact_vocabulary`); rules
(``rulesets/*.yaml``) test their fields. This table is the contract between the
two: the ruleset loader rejects a rule that names a field not listed here, and
the fact builder produces exactly these fields (omitting those it does not know,
so that "unknown" can never be mistaken for a value).

Field kinds:

``number``  compared with eq, ne, gt, gte, lt, lte
``text``    compared with eq, ne, in
``bool``    compared with eq, ne
``codes``   the value sets an item's code or name belongs to; tested with ``in:``

The same table holds the words for each fact type and field, in the two registers
they are read in today (both kept, so that no output changes):

* the rule documentation and audit pages (:mod:`ketacds.ruleset.describe`): the
  ``label`` and ``unit`` (``time since the reading``, ``hours``), the ``noun`` of a
  fact type (``antidepressant trial``) and the ``adjective`` a yes/no field reads as
  (``an active condition``);
* the explanations of a result (:mod:`ketacds.scenarios.words`: why / why not,
  scenario diffs, mutation reports): the ``short`` label and unit (``hours since the
  reading``, ``h``), the ``phrase`` naming a fact (``an antidepressant trial``) and,
  for a yes/no field, what true and false say (``is active`` / ``is not active``).

A field without words is named by its name, underscores as spaces.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "FACT_TYPES",
    "FACT_WORDS",
    "FIELDS",
    "FLAG",
    "FactWords",
    "Field",
    "FieldKind",
    "field_label",
    "short_field",
    "yes_no",
]

FieldKind = Literal["number", "text", "bool", "codes"]

#: The fact type of derived flags (``then: {flag: NAME}``); its one field is ``name``.
FLAG = "flag"


@attrs.frozen
class Field:
    """One field of a fact type: its kind, and its words (see the module documentation).

    ``kind`` is ``None`` for a field a conversion table of the ruleset adds (its words
    live here, its kind in the table).
    """

    kind: FieldKind | None
    label: str | None = None
    unit: str | None = None
    short: tuple[str, str] | None = None
    yes_no: tuple[str, str] | None = None
    adjective: str | None = None


@attrs.frozen
class FactWords:
    """How a fact type is named: ``noun`` in rule docs, ``phrase`` in explanations."""

    noun: str | None
    phrase: str | None


def _n(label: str | None = None, unit: str | None = None, short: tuple[str, str] | None = None) -> Field:
    return Field("number", label, unit, short)


def _t(label: str | None = None, short: tuple[str, str] | None = None) -> Field:
    return Field("text", label, None, short)


def _b(
    label: str | None = None, yes: str | None = None, no: str | None = None, adjective: str | None = None
) -> Field:
    return Field("bool", label, None, None, (yes, no) if yes and no else None, adjective)


_ACTIVE = _b("active", "is active", "is not active", adjective="active")
_CODES = Field("codes")

#: Fact type → field → :class:`Field`; the order of each fact type's fields is the loader's.
FIELDS: dict[str, dict[str, Field]] = {
    "patient": {
        "age_years": _n("age", "years", ("age", "years")),
        "sex": _t("sex", ("sex", "")),
        "weight_kg": _n("weight", "kg", ("weight", "kg")),
        "height_cm": _n("height", "cm", ("height", "cm")),
        "bmi": _n("BMI", "kg/m²", ("BMI", "")),
        "pregnant": _b("pregnant", "is pregnant", "is not pregnant"),
        "lactating": _b("breastfeeding", "is breastfeeding", "is not breastfeeding"),
        "hepatic_class": _t("Child-Pugh class", ("Child-Pugh class", "")),
        "setting": _t("care setting", ("setting", "")),
        # Added by rulesets/tables/diazepam-equivalents.yaml (docs/ruleset-format.md).
        "benzodiazepine_diazepam_eq_mg_day": Field(
            None, "total daily benzodiazepine dose as diazepam equivalent", "mg/day"
        ),
    },
    "condition": {
        "vs": _CODES,
        "clinical_status": _t("clinical status", ("clinical status", "")),
        "active": _ACTIVE,
        "onset_days_ago": _n("days since onset", "days", ("days since onset", "days")),
    },
    "medication": {
        "vs": _CODES,
        "drug": _t("drug", ("drug", "")),
        "status": _t("status", ("status", "")),
        "active": _ACTIVE,
        "dose_mg": _n("dose", "mg", ("dose", "mg")),
        "daily_mg": _n("daily dose", "mg/day", ("daily dose", "mg")),
        "frequency_per_day": _n("doses per day", None, ("doses per day", "")),
        "as_needed": _b("taken as needed", "is taken as needed", "is taken regularly (not as needed)"),
        # Added by rulesets/tables/diazepam-equivalents.yaml.
        "diazepam_eq_mg_day": Field(None, "daily dose as diazepam equivalent", "mg/day"),
    },
    "observation": {
        "vs": _CODES,
        "value": _n("value", None, ("value", "")),
        "unit": _t("unit", ("unit", "")),
        "hours_ago": _n("time since the reading", "hours", ("hours since the reading", "h")),
        "latest": _b(
            "latest of its kind",
            "is the latest reading of its kind",
            "is not the latest reading of its kind",
            adjective="latest",
        ),
    },
    "allergy": {
        "vs": _CODES,
        "active": _ACTIVE,
    },
    "trial": {
        "vs": _CODES,
        "drug": _t("drug", ("drug", "")),
        "dose_mg": _n("dose", "mg", ("dose", "mg")),
        "weeks": _n("duration", "weeks", ("duration", "weeks")),
        "response": _t("response", ("response", "")),
        "episode": _t("episode", ("episode", "")),
        "adequate_dose": _b("adequate dose", "reached an adequate dose", "did not reach an adequate dose"),
    },
    "substance": {
        "vs": _CODES,
        "status": _t("status", ("status", "")),
    },
    "plan": {
        "dose_mg": _n("planned dose", "mg", ("dose", "mg")),
        "dose_mg_per_kg": _n("planned dose", "mg/kg"),
        "sessions_per_week": _n("planned sessions per week"),
        "treatment_week": _n("week of treatment"),
        "session_number": _n("session of the course"),
        "missed_sessions": _n("sessions missed since the last session"),
        "symptoms_worsened": _b("symptoms worsened since the missed sessions"),
    },
    # The ordered dose of the planned treatment (Context.order), at most one.
    "order": {
        "vs": _CODES,
        "drug": _t(short=("drug", "")),
        "dose_mg": _n(short=("dose", "mg")),
        "mg_per_kg": _n(),
        "per_week": _n(),
    },
    # A data-quality issue of severity error or warning (PatientRecord.data_quality).
    "quality": {
        "severity": _t(),
        "code": _t(),
        "resource_type": _t(),
    },
    FLAG: {
        "name": _t(),
    },
}

#: Fact type → field → kind: the fields rules may test (the ruleset loader's contract).
FACT_TYPES: dict[str, dict[str, FieldKind]] = {
    fact: {name: f.kind for name, f in fields.items() if f.kind is not None}
    for fact, fields in FIELDS.items()
}

#: How each fact type is named.
FACT_WORDS: dict[str, FactWords] = {
    "patient": FactWords("patient", "the patient"),
    "condition": FactWords("condition", "a condition"),
    "medication": FactWords("medication", "a medication"),
    "observation": FactWords("observation", "an observation"),
    "trial": FactWords("antidepressant trial", "an antidepressant trial"),
    "allergy": FactWords("allergy", "an allergy"),
    "substance": FactWords("substance use", "a substance use record"),
    "plan": FactWords("planned session", None),
    FLAG: FactWords(None, "a derived flag"),
}


def _spaced(name: str) -> str:
    return name.replace("_", " ")


def field_label(fact: str, name: str) -> tuple[str, str | None]:
    """The rule documentation's label and unit of a field: ``("time since the reading", "hours")``."""
    field = FIELDS.get(fact, {}).get(name)
    if field is None or field.label is None:
        return _spaced(name), None
    return field.label, field.unit


def _by_name() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """The explanation words by field name (they do not depend on the fact type)."""
    short: dict[str, tuple[str, str]] = {}
    yes_no: dict[str, tuple[str, str]] = {}
    for fields in FIELDS.values():
        for name, field in fields.items():
            for found, words in ((short, field.short), (yes_no, field.yes_no)):
                if words is not None:
                    assert found.setdefault(name, words) == words, f"two explanations of {name}"
    return short, yes_no


_SHORT, _YES_NO = _by_name()


def short_field(name: str) -> tuple[str, str]:
    """The explanations' label and unit of a field: ``("hours since the reading", "h")``."""
    return _SHORT.get(name, (_spaced(name), ""))


def yes_no(name: str) -> tuple[str, str] | None:
    """What a yes/no field says when true and when false (``is active``, ``is not active``), if known."""
    return _YES_NO.get(name)
