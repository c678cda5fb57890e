"""Records a tester built to look like real data (2026-12-07), read from a Synthea bundle with one edit.

Each edit is something a real EHR sends that ketacds-core 0.5.0 did not see: a blood
pressure coded by position, a ketamine allergy coded in SNOMED CT, a phenelzine order still
in draft. The rules of 0.6.0 see each of them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from ketacds import Context, Engine
from ketacds.adapters.fhir import read_bundle
from support import synthea

NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def bundle_with(*resources: dict[str, Any]) -> dict[str, Any]:
    """Synthea bundle 03 (an adult with major depression) with ``resources`` added for its patient."""
    bundle = json.loads(synthea("03").read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    subject = {"reference": f"urn:uuid:{patient['id']}"}
    for resource in resources:
        key = "patient" if resource["resourceType"] == "AllergyIntolerance" else "subject"
        bundle["entry"].append(
            {"fullUrl": f"urn:uuid:probe-{resource['id']}", "resource": {**resource, key: subject}}
        )
    return bundle


def mmhg(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}


def loinc(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code}]}


def findings(engine: Engine, bundle: dict[str, Any], route: str = "esketamine-nasal") -> set[str]:
    record = read_bundle(bundle, terminology=engine.terminology)
    assessment = engine.assess(record, Context(route=route, jurisdiction="US", now=NOW))
    return {f.rule_id for f in assessment.findings}


@pytest.mark.parametrize(
    ("systolic", "diastolic"),
    [("8459-0", "8453-3"), ("8460-8", "8454-1"), ("8461-6", "8455-8")],
    ids=["sitting", "standing", "supine"],
)
def test_a_position_specific_blood_pressure_panel_is_read(
    engine: Engine, systolic: str, diastolic: str
) -> None:
    """A 170/105 panel coded by position, an hour before now, defers the session (KCDS-CI-004)."""
    panel = {
        "resourceType": "Observation",
        "id": "bp-position",
        "status": "final",
        "code": loinc("85354-9"),
        "effectiveDateTime": "2026-11-21T09:00:00Z",
        "component": [
            {"code": loinc(systolic), "valueQuantity": mmhg(170)},
            {"code": loinc(diastolic), "valueQuantity": mmhg(105)},
        ],
    }

    assert "KCDS-CI-004" in findings(engine, bundle_with(panel))


def test_a_sitting_systolic_reading_alone_supersedes_an_older_normal_one(engine: Engine) -> None:
    """The newest systolic reading is the current one whatever its position code."""
    older = {
        "resourceType": "Observation",
        "id": "sbp-older",
        "status": "final",
        "code": loinc("8480-6"),
        "effectiveDateTime": "2026-11-21T07:00:00Z",
        "valueQuantity": mmhg(118),
    }
    sitting = {
        **older,
        "id": "sbp-sitting",
        "code": loinc("8459-0"),
        "effectiveDateTime": "2026-11-21T09:30:00Z",
    }
    sitting["valueQuantity"] = mmhg(165)

    assert "KCDS-CI-004" in findings(engine, bundle_with(older, sitting))
    assert "KCDS-CI-004" not in findings(engine, bundle_with(older))


def test_a_ketamine_allergy_coded_in_snomed_ct_contraindicates(engine: Engine) -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "ketamine-allergy",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": "373464007", "display": "Ketamine (substance)"}]},
    }

    assert "KCDS-CI-006" in findings(engine, bundle_with(allergy))


@pytest.mark.parametrize(("status", "interacts"), [("draft", True), ("active", True), ("on-hold", False)])
def test_a_drafted_maoi_interacts(engine: Engine, status: str, interacts: bool) -> None:
    """A phenelzine MedicationRequest in draft is read as intended and interacts (KCDS-INT-012)."""
    request = {
        "resourceType": "MedicationRequest",
        "id": "phenelzine",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "8123",
                    "display": "phenelzine",
                }
            ]
        },
    }

    assert ("KCDS-INT-012" in findings(engine, bundle_with(request))) is interacts


def test_a_breastfeeding_status_observation_is_an_error_not_left_out(engine: Engine) -> None:
    """LOINC 63895-7 is a kind the reader cannot read yet: an error, never "no rule reads them"."""
    status = {
        "resourceType": "Observation",
        "id": "breastfeeding",
        "status": "final",
        "code": loinc("63895-7"),
        "effectiveDateTime": "2026-11-20T09:00:00Z",
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "169750002"}]},
    }
    record = read_bundle(bundle_with(status), terminology=engine.terminology)

    unread = [(q.severity, q.resource) for q in record.data_quality if q.code == "unread-kind"]
    assert [("error", "Observation/breastfeeding")] == unread
    assessment = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))
    assert "KCDS-GAP-013" in {f.rule_id for f in assessment.findings}
    assert "63895-7" in engine.terminology.fhir_mapping.observation_codes  # asked for in the prefetch
