"""The fixed FHIR R4 vocabulary the reader compares against: code systems, statuses, elements read.

What a deployment may change (the LOINC codes read, route codes, products, timing
words) is data in ``rulesets/terminology/`` (:class:`~ketacds.terminology.mapping.FhirMapping`,
carried by the engine's :class:`~ketacds.terminology.valuesets.Terminology`); what FHIR
itself defines is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A FHIR resource as JSON data.
Resource = Mapping[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
READ_TYPES = {
    "Patient",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "AllergyIntolerance",
    "Medication",
}
REQUEST_STATUS = {
    "active": "active",
    "on-hold": "on-hold",
    "draft": "intended",
    "completed": "completed",
    "stopped": "stopped",
}
STATEMENT_STATUS = {
    "active": "active",
    "on-hold": "on-hold",
    "intended": "intended",
    "completed": "completed",
    "stopped": "stopped",
}
EXCLUDED_STATUS = {"cancelled", "entered-in-error", "not-taken"}
CURRENT = ("active", "on-hold", "intended")
CONDITION_STATUS = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
ALLERGY_STATUS = {"active", "inactive", "resolved"}
OBSERVATION_EXCLUDED = {"entered-in-error", "cancelled"}


# The elements read of each resource type: only these are validated (see ReaderBase.validate).
READ_ELEMENTS: dict[str, frozenset[str]] = {
    "Patient": frozenset(
        {"resourceType", "id", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime"}
    ),
    "Condition": frozenset(
        {
            "resourceType",
            "id",
            "clinicalStatus",
            "verificationStatus",
            "code",
            "subject",
            "onsetDateTime",
            "onsetPeriod",
        }
    ),
    "Observation": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "code",
            "subject",
            "effectiveDateTime",
            "effectiveInstant",
            "effectivePeriod",
            "issued",
            "valueQuantity",
            "valueCodeableConcept",
            "dataAbsentReason",
            "component",
        }
    ),
    "MedicationRequest": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "intent",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "dosageInstruction",
            "contained",
        }
    ),
    "MedicationStatement": frozenset(
        {
            "resourceType",
            "id",
            "status",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "dosage",
            "contained",
        }
    ),
    "AllergyIntolerance": frozenset(
        {"resourceType", "id", "clinicalStatus", "verificationStatus", "code", "patient"}
    ),
    "Medication": frozenset({"resourceType", "id", "code"}),
}
