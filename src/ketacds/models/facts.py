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
"""

from __future__ import annotations

from typing import Literal

__all__ = ["FACT_TYPES", "FLAG", "FieldKind"]

FieldKind = Literal["number", "text", "bool", "codes"]

#: The fact type of derived flags (``then: {flag: NAME}``); its one field is ``name``.
FLAG = "flag"

FACT_TYPES: dict[str, dict[str, FieldKind]] = {
    "patient": {
        "age_years": "number",
        "sex": "text",
        "weight_kg": "number",
        "height_cm": "number",
        "bmi": "number",
        "pregnant": "bool",
        "lactating": "bool",
        "hepatic_class": "text",
        "setting": "text",
    },
    "condition": {
        "vs": "codes",
        "clinical_status": "text",
        "active": "bool",
        "onset_days_ago": "number",
    },
    "medication": {
        "vs": "codes",
        "drug": "text",
        "status": "text",
        "active": "bool",
        "dose_mg": "number",
        "daily_mg": "number",
        "frequency_per_day": "number",
        "as_needed": "bool",
    },
    "observation": {
        "vs": "codes",
        "value": "number",
        "unit": "text",
        "hours_ago": "number",
        "latest": "bool",
    },
    "allergy": {
        "vs": "codes",
        "active": "bool",
    },
    "trial": {
        "vs": "codes",
        "drug": "text",
        "dose_mg": "number",
        "weeks": "number",
        "response": "text",
        "episode": "text",
        "adequate_dose": "bool",
    },
    "substance": {
        "vs": "codes",
        "status": "text",
    },
    "plan": {
        "dose_mg": "number",
        "dose_mg_per_kg": "number",
        "sessions_per_week": "number",
        "treatment_week": "number",
        "session_number": "number",
        "missed_sessions": "number",
        "symptoms_worsened": "bool",
    },
    # The ordered dose of the planned treatment (Context.order), at most one.
    "order": {
        "vs": "codes",
        "drug": "text",
        "dose_mg": "number",
        "mg_per_kg": "number",
        "per_week": "number",
    },
    # A data-quality issue of severity error or warning (PatientRecord.data_quality).
    "quality": {
        "severity": "text",
        "code": "text",
        "resource_type": "text",
    },
    FLAG: {
        "name": "text",
    },
}
