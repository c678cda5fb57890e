"""Defects a probe of the CDS Hooks service found (2026-12-07), each through the real service.

Principle: no card set is more reassuring than the data warrant. Every input is read or
reported, and a malformed request is a 4xx with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from servers import SPEC_PATIENT, Service, StubFhirServer, prefetch_for, server_view, token
from servers import esketamine_order as draft_esketamine_order
from support import CDS_HOOKS, synthea

FHIR_AUTH = json.loads((CDS_HOOKS / "fhir-authorization.json").read_text())["fhirAuthorization"]
READ_CODES = {"55284-4", "85354-9", "8480-6", "8462-4", "29463-7", "8302-2", "39156-5", "44261-6", "82810-3"}
ORDER_SIGN = "ketacds-order-sign"
ORDER_SELECT = "ketacds-order-select"


def post(client: httpx.Client, service: Service, service_id: str, body: Any) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token(service.endpoint(service_id))}"}
    return client.post(f"/cds-services/{service_id}", json=body, headers=auth)


def request(hook: str, context: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": "probe-1", "context": context, **fields}


def esketamine_order(rid: str = "draft-esketamine-1") -> dict[str, Any]:
    return draft_esketamine_order(56, 2, rid=rid)


def draft(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


ANEURYSM = {
    "resourceType": "Condition",
    "id": "aneurysm-1",
    "clinicalStatus": {"coding": [{"code": "active"}]},
    "verificationStatus": {"coding": [{"code": "confirmed"}]},
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I71.40"}]},
    "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
}


def spec_prefetch() -> dict[str, Any]:
    resources = server_view(json.loads(synthea("03").read_text()), patient_id=SPEC_PATIENT)
    return prefetch_for(resources, SPEC_PATIENT, READ_CODES)


def summaries(response: httpx.Response) -> list[tuple[str, str]]:
    assert 200 == response.status_code, response.text
    return [(card["indicator"], card["summary"]) for card in response.json()["cards"]]


@pytest.fixture
def duplicate_key_server(fhir_server: StubFhirServer) -> Iterator[str]:
    """``{fhir_server.url}/dupkey``: its Condition search holds an aneurysm whose ``code`` is given twice."""
    text = json.dumps(ANEURYSM)
    duplicated = text[:-1] + ', "code": {"text": "fine"}}'
    bundle = '{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": ' + duplicated + "}]}"

    def answer(path: str) -> tuple[int, bytes]:
        if path.startswith("/fhir/Condition"):
            return 200, bundle.encode()
        status, body = fhir_server.answer(path)
        return status, json.dumps(body).encode()

    fhir_server.variants["dupkey"] = answer
    try:
        yield f"{fhir_server.url}/dupkey"
    finally:
        del fhir_server.variants["dupkey"]


def test_a_fetched_answer_naming_a_key_twice_is_412_naming_it(client, service, duplicate_key_server):
    """A fetched Condition with a second ``code`` is refused, as in a body: never read as its last value."""
    prefetch = spec_prefetch()
    del prefetch["conditions"]
    body = request(
        "order-sign",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())},
        prefetch=prefetch,
        fhirServer=duplicate_key_server,
        fhirAuthorization=FHIR_AUTH,
    )

    response = post(client, service, ORDER_SIGN, body)

    assert 412 == response.status_code
    assert "could not fetch conditions" in response.json()["error"]
    assert "duplicate key 'code'" in response.json()["error"]


def test_a_prefetched_bundle_whose_entry_is_an_object_is_an_error_never_empty(client, service):
    """Conditions given as ``entry: {resource: aneurysm}``: not read, and said so (never an empty search)."""
    prefetch = spec_prefetch()
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": {"resource": ANEURYSM}}
    body = request(
        "order-sign", {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())}, prefetch=prefetch
    )

    response = post(client, service, ORDER_SIGN, body)

    details = " ".join(card["detail"] for card in response.json()["cards"])
    assert summaries(response), "an unread Bundle gave no card"
    assert "gives its entry as something other than a list" in details


@pytest.mark.parametrize(
    "draft_orders",
    [
        {"resourceType": "Bundle", "type": "collection", "entry": {"resource": esketamine_order()}},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": None}]},
        {"resourceType": "Bundle", "type": "collection", "entry": [5]},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1"}]},
    ],
    ids=["entry-object", "resource-null", "entry-number", "entry-without-resource"],
)
@pytest.mark.parametrize("service_id", [ORDER_SIGN, ORDER_SELECT])
def test_draft_orders_that_cannot_be_read_get_a_warning_never_no_cards(
    client, service, draft_orders, service_id
):
    """An unreadable drafted entry could be the ketamine order: a warning, never ``{"cards": []}``."""
    hook = "order-sign" if service_id == ORDER_SIGN else "order-select"
    body = request(hook, {"patientId": SPEC_PATIENT, "draftOrders": draft_orders}, prefetch=spec_prefetch())

    response = post(client, service, service_id, body)

    assert [
        ("warning", "ketacds cannot tell whether a drafted order is ketamine or esketamine")
    ] == summaries(response)
    assert "draftOrders:" in response.json()["cards"][0]["detail"]


def test_an_unreadable_entry_beside_a_readable_order_is_an_error_of_its_check(client, service):
    """The esketamine order is checked, and the entry beside it that is not a resource is reported."""
    orders = draft(esketamine_order())
    orders["entry"].append({"resource": None})
    body = request("order-sign", {"patientId": SPEC_PATIENT, "draftOrders": orders}, prefetch=spec_prefetch())

    response = post(client, service, ORDER_SIGN, body)

    assert "is not a FHIR resource" in " ".join(card["detail"] for card in response.json()["cards"])


@pytest.mark.parametrize(
    "selection",
    [
        "MedicationRequest/nope",
        "draft-esketamine-1",
        "http://ehr.example.org/fhir/MedicationRequest/draft-esketamine-1",
    ],
)
def test_an_order_select_selection_matching_no_drafted_resource_is_422_naming_it(client, service, selection):
    """A selection that names nothing in draftOrders: the selected order was not read, so never ``[]``."""
    context = {
        "patientId": SPEC_PATIENT,
        "draftOrders": draft(esketamine_order()),
        "selections": ["MedicationRequest/draft-esketamine-1", selection],
    }

    response = post(client, service, ORDER_SELECT, request("order-select", context, prefetch=spec_prefetch()))

    assert 422 == response.status_code
    assert "context.selections[1]: matches no resource in draftOrders" in response.json()["error"]
    assert selection not in response.json()["error"]  # (an error answer never echoes request values)


def test_an_order_select_selection_of_a_drafted_resource_is_answered(client, service):
    """A selection naming the drafted order by Type/id is read: the order is checked."""
    context = {
        "patientId": SPEC_PATIENT,
        "draftOrders": draft(esketamine_order()),
        "selections": ["MedicationRequest/draft-esketamine-1"],
    }

    response = post(client, service, ORDER_SELECT, request("order-select", context, prefetch=spec_prefetch()))

    assert summaries(response)


@pytest.mark.parametrize("key", ["medications", "conditions", "patient"])
def test_a_prefetch_key_holding_a_resource_of_another_type_is_an_error(client, service, key):
    """``medications`` given as the Patient (or ``patient`` as a Condition): reported, never "none found"."""
    prefetch = spec_prefetch()
    prefetch[key] = ANEURYSM if key == "patient" else prefetch["patient"]
    body = request(
        "order-sign", {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())}, prefetch=prefetch
    )

    response = post(client, service, ORDER_SIGN, body)

    details = " ".join(card["detail"] for card in response.json()["cards"])
    assert summaries(response)
    assert f"Prefetch {key!r} holds a" in details


def test_a_prefetched_read_or_search_of_the_right_type_is_no_error(client, service):
    """The templates' own answers (a Patient for the read, Bundles for the searches) raise nothing."""
    body = request("patient-view", {"patientId": SPEC_PATIENT}, prefetch=spec_prefetch())

    response = post(client, service, "ketacds-patient-view", body)

    assert "Prefetch " not in " ".join(card["detail"] for card in response.json()["cards"])


def test_a_feedback_query_since_that_is_not_iso_8601_is_422_and_since_is_read_as_a_time(client, service):
    """``since=garbage`` is refused (never compared as text); a date, or a time in any zone, is a time."""
    feedback_url = f"{service.endpoint(ORDER_SIGN)}/feedback"
    body = json.loads((CDS_HOOKS / "feedback-overridden.json").read_text())
    body["feedback"][0]["card"] = card = "9a1f7c1e-probe-since"
    recorded = client.post(
        f"/cds-services/{ORDER_SIGN}/feedback",
        json=body,
        headers={"Authorization": f"Bearer {token(feedback_url)}"},
    )
    assert 200 == recorded.status_code  # received at the service clock's 2026-11-21T14:00:00Z

    def query(since: str) -> httpx.Response:
        return client.get(
            f"/cds-services/{ORDER_SIGN}/feedback",
            params={"card": card, "since": since},
            headers={"Authorization": f"Bearer {token(feedback_url)}"},
        )

    for garbage in ("garbage", "yesterday", "2026-13-01", "21/11/2026"):
        refused = query(garbage)
        assert 422 == refused.status_code, garbage
        assert refused.json()["error"].startswith("since: not an ISO 8601 date or date-time")
    found = {
        since: len(query(since).json()["feedback"])
        for since in (
            "2026-11-21",
            "2026-11-21T15:00:00+01:00",
            "2026-11-21T14:00:00Z",
            "2026-11-21T14:00:01Z",
            "2026-11-22",
        )
    }
    assert {
        "2026-11-21": 1,
        "2026-11-21T15:00:00+01:00": 1,
        "2026-11-21T14:00:00Z": 1,
        "2026-11-21T14:00:01Z": 0,
        "2026-11-22": 0,
    } == found


def test_medication_statements_are_asked_for_and_fetched_when_not_prefetched(client, service, fhir_server):
    """Discovery asks for MedicationStatements; one only the FHIR server holds (phenelzine) is read."""
    templates = client.get("/cds-services").json()["services"][0]["prefetch"]
    assert "MedicationStatement?patient={{context.patientId}}" == templates["medicationStatements"]
    statement = {
        "resourceType": "MedicationStatement",
        "id": "probe-phenelzine",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312347"}]
        },
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
    }
    prefetch = spec_prefetch()
    del prefetch["medicationStatements"]
    body = request(
        "order-sign",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())},
        prefetch=prefetch,
        fhirServer=fhir_server.url,
        fhirAuthorization=FHIR_AUTH,
    )
    before = summaries(post(client, service, ORDER_SIGN, body))
    fhir_server.add([statement])
    try:
        after = post(client, service, ORDER_SIGN, body)
    finally:
        del fhir_server.resources["MedicationStatement/probe-phenelzine"]

    assert any(path.startswith("/fhir/MedicationStatement?patient=") for path in fhir_server.requests)
    assert before != summaries(after)
    assert "phenelzine" in " ".join(card["detail"] for card in after.json()["cards"]).lower()


def test_medication_statements_missing_and_nowhere_to_fetch_them_is_412(client, service):
    """The five other keys prefetched, no fhirServer: 412 naming medicationStatements."""
    prefetch = spec_prefetch()
    del prefetch["medicationStatements"]
    body = request(
        "order-sign", {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())}, prefetch=prefetch
    )

    response = post(client, service, ORDER_SIGN, body)

    assert 412 == response.status_code
    assert "medicationStatements missing" in response.json()["error"]
