"""Order-sign through the real service: every part of a drafted order is read or said.

The drug by a referred Medication or by code alone, the frequency's maximum and days,
a second dosage line, a route stated as text: each used to be read as something more
reassuring (no order at all, once a week, the first line, nasal).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from servers import SPEC_PATIENT, Service, token
from support import CDS_HOOKS

FHIR_AUTH = json.loads((CDS_HOOKS / "fhir-authorization.json").read_text())["fhirAuthorization"]
UCUM = "http://unitsofmeasure.org"
NASAL = {"coding": [{"system": "http://snomed.info/sct", "code": "46713006"}]}
WEEKLY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}


def dosage(dose: int = 56, timing: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    quantity = {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"}
    return {"route": NASAL, "timing": timing or WEEKLY, "doseAndRate": [{"doseQuantity": quantity}], **fields}


def order(*dosages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationRequest",
        "id": "draft-esketamine-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "esketamine 28 MG/device nasal spray"},
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
        "dosageInstruction": list(dosages) or [dosage()],
    }
    resource.update(fields)
    return {k: v for k, v in resource.items() if v is not None}


def sign(client: httpx.Client, service: Service, fhir_server: Any, *resources: dict[str, Any]) -> list[str]:
    """The summaries of the cards order-sign answers for these drafted resources."""
    body = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "patientId": SPEC_PATIENT,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]},
        },
        "fhirServer": fhir_server.url,
        "fhirAuthorization": FHIR_AUTH,
    }
    auth = {"Authorization": f"Bearer {token(service.endpoint('ketacds-order-sign'))}"}
    response = client.post("/cds-services/ketacds-order-sign", json=body, headers=auth)
    assert 200 == response.status_code, response.text
    return [card["summary"] for card in response.json()["cards"]]


def test_an_order_by_a_contained_medication_is_checked(client, service, fhir_server):
    """112 mg three times a week, the drug named only in a contained Medication: both dose cards."""
    medication = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "esketamine 28 MG/device nasal spray"},
    }
    drafted = order(
        dosage(112, {"repeat": {"frequency": 3, "period": 1, "periodUnit": "wk"}}),
        medicationCodeableConcept=None,
        medicationReference={"reference": "#m1"},
        contained=[medication],
    )

    summaries = sign(client, service, fhir_server, drafted)

    assert {"KCDS-ORD-001", "KCDS-ORD-002"} <= {s.rsplit("(", 1)[-1].rstrip(")") for s in summaries}


def test_an_order_coded_only_as_ketamine_or_esketamine_gets_a_card_saying_it_is_not_checked(
    client, service, fhir_server
):
    drafted = order(
        medicationCodeableConcept={
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2119365"}]
        }
    )

    (summary,) = sign(client, service, fhir_server, drafted)

    assert summary.startswith("ketacds cannot check this ketamine or esketamine order")


def test_an_order_whose_drug_cannot_be_told_gets_a_card(client, service, fhir_server):
    drafted = order(medicationCodeableConcept=None, medicationReference={"reference": "Medication/absent"})

    (summary,) = sign(client, service, fhir_server, drafted)

    assert "cannot tell whether a drafted order is ketamine or esketamine" in summary


def test_frequency_max_above_twice_a_week_defers(client, service, fhir_server):
    timing = {"repeat": {"frequency": 1, "frequencyMax": 3, "period": 1, "periodUnit": "wk"}}

    summaries = sign(client, service, fhir_server, order(dosage(56, timing)))

    assert any("KCDS-ORD-002" in s for s in summaries)


def test_a_second_concurrent_dosage_line_is_added(client, service, fhir_server):
    """Two lines of 56 mg given together are 112 mg a session: not a dose that can be given."""
    summaries = sign(client, service, fhir_server, order(dosage(56), dosage(56, sequence=0)))

    assert any("KCDS-ORD-001" in s for s in summaries)


def test_a_route_stated_as_text_is_not_assumed_nasal(client, service, fhir_server):
    drafted = order(
        {**dosage(56), "route": {"text": "oral"}}, medicationCodeableConcept={"text": "esketamine"}
    )

    (summary,) = sign(client, service, fhir_server, drafted)

    assert summary.startswith("ketacds cannot check this ketamine or esketamine order")
