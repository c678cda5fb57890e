"""The CDS Hooks service end to end: a real uvicorn server, a real HTTP client, real FHIR.

Requests are the specification's own examples (tests/data/cds-hooks/) and the
Synthea bundles (tests/data/fhir/), given as prefetch or fetched from a stub FHIR
server on loopback.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import uuid
from typing import Any

import attrs
import httpx
import pytest

from ketacds import load_ruleset
from ketacds.adapters.cds_hooks import INDICATORS
from ketacds.server.app import create_app
from ketacds.server.models import CardsResponse
from servers import (
    SPEC_PATIENT,
    Service,
    StubFhirServer,
    UvicornThread,
    esketamine_order,
    free_port,
    prefetch_for,
    searchset,
    server_view,
    token,
)
from support import CDS_HOOKS, synthea

NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)

FHIR_AUTH = json.loads((CDS_HOOKS / "fhir-authorization.json").read_text())["fhirAuthorization"]
READ_CODES = {"55284-4", "85354-9", "8480-6", "8462-4", "29463-7", "8302-2", "39156-5", "44261-6", "82810-3"}


def spec(name: str) -> Any:
    return json.loads((CDS_HOOKS / name).read_text())


def post(
    client: httpx.Client, service: Service, service_id: str, body: Any, **headers: str
) -> httpx.Response:
    """POST with a fresh token for that endpoint (unless the caller gives its own Authorization)."""
    auth = {"Authorization": f"Bearer {token(service.endpoint(service_id))}"}
    return client.post(f"/cds-services/{service_id}", json=body, headers={**auth, **headers})


def request(hook: str, context: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, **fields}


def via_fhir(fhir_server: StubFhirServer) -> dict[str, Any]:
    return {"fhirServer": fhir_server.url, "fhirAuthorization": FHIR_AUTH}


def ketamine_iv_order(dose: int) -> dict[str, Any]:
    order = esketamine_order(dose, 2, rid="draft-ketamine-1", route="47625008")
    order["medicationCodeableConcept"] = {
        "coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130", "display": "Ketamine"}
        ]
    }
    return order


def draft(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def summaries(response: httpx.Response) -> list[tuple[str, str]]:
    return [(card["indicator"], card["summary"]) for card in response.json()["cards"]]


def test_discovery_lists_one_service_per_hook_with_prefetch(client):
    """Discovery offers patient-view, order-select and order-sign, with the spec's fields and templates."""
    services = client.get("/cds-services").json()["services"]
    example_keys = set(spec("discovery-response.json")["services"][1])

    assert ["patient-view", "order-select", "order-sign"] == [s["hook"] for s in services]
    assert all(example_keys <= set(s) for s in services)
    assert "Patient/{{context.patientId}}" == services[0]["prefetch"]["patient"]
    assert "http://loinc.org|29463-7" in services[0]["prefetch"]["observations"]


def test_spec_example_cards_fit_our_response_model():
    """The specification's example card response is valid against the model our answers are checked with."""
    CardsResponse.model_validate(spec("card-response-example.json"))


def test_patient_view_with_synthea_prefetch(client, service):
    """A Synthea patient with depression, prefetched: the gaps, the data quality and a summary per route."""
    resources = server_view(json.loads(synthea("03").read_text()))
    (patient_id,) = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    body = request(
        "patient-view",
        {"userId": "Practitioner/1", "patientId": patient_id},
        prefetch=prefetch_for(resources, patient_id, READ_CODES),
    )

    response = post(client, service, "ketacds-patient-view", body)

    assert 200 == response.status_code
    cards = response.json()["cards"]
    assert [
        (
            "warning",
            "Missing data could change the answer: antidepressant treatment history, pre-dose blood pressure",
        ),
        (
            # Its weights are years old (validity.yaml): not current, so no weight-based dose.
            "warning",
            "Missing data could change the answer: weight, antidepressant treatment history, "
            "pre-dose blood pressure",
        ),
        # Routine monitoring: one card per group (issue 15 §10), then the summary, per route.
        ("info", "Esketamine nasal spray: Routine monitoring at every session (8 items)"),
        ("info", "Esketamine nasal spray: Routine monitoring before and throughout the course (3 items)"),
        ("info", "Esketamine nasal spray: incomplete (2 findings to review) — ketacds"),
        ("info", "IV ketamine: Routine monitoring at every session (5 items)"),
        ("info", "IV ketamine: Routine monitoring before and throughout the course (5 items)"),
        ("info", "IV ketamine: incomplete (3 findings to review) — ketacds"),
    ] == summaries(response)
    gaps = [c for c in cards if c["summary"].startswith("Missing data")]
    assert all(len(c["summary"]) < 140 for c in cards)
    assert len({c["uuid"] for c in cards}) == len(cards)
    version = re.escape(f"{load_ruleset().name} {load_ruleset().version}")
    assert all(re.search(rf"{version} \(rules sha256 [0-9a-f]{{12}}\)", c["source"]["label"]) for c in cards)
    # No dose from a weight measured years ago: the gap asks for a current one.
    assert "KCDS-DOSE-001" not in cards[7]["detail"]
    assert "**Dose:**" not in cards[7]["detail"]
    # Each group card lists its members with rule ids and sources.
    assert (
        "- **Blood pressure before and about 40 minutes after esketamine** (KCDS-MON-001;"
        in (cards[2]["detail"])
    )
    assert "Sources: US-ESK-2019 §5.6 Increase in blood pressure" in cards[2]["detail"]
    assert "**Missing data that could change the answer**" in gaps[0]["detail"]
    assert "Advisory only" in gaps[0]["detail"]


def test_patient_view_fetches_from_the_fhir_server_when_not_prefetched(client, service, fhir_server):
    """The spec's patient-view request, pointed at the stub FHIR server: all is fetched, pages followed.

    The spec's own prefetch key (``patientToGreet``, which no template asks for) is read
    too: its Patient differs from the server's (the stub serves Synthea 03 under the
    spec's id), so two versions of the patient are an error.
    """
    body = spec("patient-view-request.json") | via_fhir(fhir_server)
    before = len(fhir_server.requests)

    response = post(client, service, "ketacds-patient-view", body)

    fetched = fhir_server.requests[before:]
    assert 200 == response.status_code
    assert f"/fhir/Patient/{SPEC_PATIENT}" in fetched
    assert any("_page=1" in path for path in fetched)  # the observation search had a second page
    assert ("info", "Esketamine nasal spray: incomplete (3 findings to review) — ketacds") in summaries(
        response
    )
    assert "Two different versions were given" in "".join(c["detail"] for c in response.json()["cards"])

    del body["prefetch"]  # all fetched: the server's patient alone
    response = post(client, service, "ketacds-patient-view", body)
    assert ("info", "Esketamine nasal spray: incomplete (2 findings to review) — ketacds") in summaries(
        response
    )


def test_prefetch_and_fetch_give_the_same_cards(client, service, fhir_server):
    """The same patient prefetched or fetched gets the same cards (uuids aside)."""
    resources = server_view(json.loads(synthea("03").read_text()), patient_id=SPEC_PATIENT)
    context = {"userId": "Practitioner/1", "patientId": SPEC_PATIENT}
    prefetched = post(
        client,
        service,
        "ketacds-patient-view",
        request("patient-view", context, prefetch=prefetch_for(resources, SPEC_PATIENT, READ_CODES)),
    )
    fetched = post(
        client, service, "ketacds-patient-view", request("patient-view", context, **via_fhir(fhir_server))
    )

    def strip(response: httpx.Response) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "uuid"} for c in response.json()["cards"]]

    assert strip(prefetched) == strip(fetched)


def synthea_prefetch(number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Synthea patient's hook context and prefetch (its Patient resource first among its resources)."""
    resources = server_view(json.loads(synthea(number).read_text()))
    (patient_id,) = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    context = {"userId": "Practitioner/1", "patientId": patient_id}
    return context, prefetch_for(resources, patient_id, READ_CODES)


def cards_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert 200 == response.status_code
    return [{k: v for k, v in c.items() if k != "uuid"} for c in response.json()["cards"]]


def test_a_prefetch_key_no_template_asks_for_is_read_like_the_templates(client, service):
    """A key the service did not ask for is read all the same: its resources are never left unseen."""
    context, prefetch = synthea_prefetch("03")
    hemorrhage = {
        "resourceType": "Condition",
        "id": "ich",
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I61.9"}]},
        "subject": {"reference": f"Patient/{context['patientId']}"},
    }
    conditions = [e["resource"] for e in prefetch["conditions"]["entry"]]

    def cards(prefetched: dict[str, Any]) -> list[dict[str, Any]]:
        body = request("patient-view", context, prefetch=prefetched)
        return cards_of(post(client, service, "ketacds-patient-view", body))

    extra = cards({**prefetch, "history": searchset([hemorrhage])})
    listed = cards({**prefetch, "conditions": searchset([*conditions, hemorrhage])})

    assert extra == listed
    assert extra != cards(prefetch)


def test_a_prefetched_search_read_in_part_is_one_error(client, service):
    """A next page on another server: one ``incomplete-prefetch`` error, not a second from the reader."""
    context, prefetch = synthea_prefetch("03")
    prefetch["conditions"]["link"] = [
        {"relation": "next", "url": "https://elsewhere.example.org/fhir/Condition?page=2"}
    ]
    prefetch["conditions"]["total"] = len(prefetch["conditions"]["entry"]) + 20
    body = request("patient-view", context, prefetch=prefetch)

    cards = cards_of(post(client, service, "ketacds-patient-view", body))

    details = "".join(c["detail"] for c in cards if "could not be read" in c["summary"])
    assert 2 == details.count("Only part of the prefetched conditions could be read")  # (one card per route)
    assert "one page of a search" not in details
    assert "says its search matched" not in details


def test_a_prefetched_search_whose_total_is_above_its_entries_is_an_error(client, service):
    """``total`` says more matched than the Bundle gives, and no next link: the rest is missing."""
    context, prefetch = synthea_prefetch("03")
    prefetch["conditions"]["total"] = len(prefetch["conditions"]["entry"]) + 20
    body = request("patient-view", context, prefetch=prefetch)

    cards = cards_of(post(client, service, "ketacds-patient-view", body))

    details = "".join(c["detail"] for c in cards if "could not be read" in c["summary"])
    assert "says its search matched" in details


def test_the_spec_request_verbatim_is_412_because_its_fhir_server_is_not_allowed(client, service):
    """The verbatim example names hooks.smarthealthit.org, which this service may not call: 412."""
    response = post(client, service, "ketacds-patient-view", spec("patient-view-request.json"))

    assert 412 == response.status_code
    assert "fhirServer is not one this service may call" in response.json()["error"]


def test_missing_prefetch_without_fhir_server_is_412(client, service):
    """Nothing prefetched and nowhere to fetch from: 412, naming what is missing."""
    response = post(
        client,
        service,
        "ketacds-patient-view",
        request("patient-view", spec("patient-view-context-2.json")["context"]),
    )

    assert 412 == response.status_code
    assert (
        "allergies, conditions, medicationStatements, medications, observations, patient missing and no "
        "fhirServer" in response.json()["error"]
    )


def test_a_fhir_server_refusing_the_token_is_412(client, service, fhir_server):
    """A fhirAuthorization the FHIR server refuses: 412 with the server's status."""
    body = request(
        "patient-view",
        {"patientId": SPEC_PATIENT},
        fhirServer=fhir_server.url,
        fhirAuthorization={**FHIR_AUTH, "access_token": "wrong"},
    )

    response = post(client, service, "ketacds-patient-view", body)

    assert 412 == response.status_code
    assert "HTTP 401" in response.json()["error"]


def test_order_sign_spec_example_without_ketamine_gives_no_cards(client, service, fhir_server):
    """The spec's order-sign example (amoxicillin and a diet, STU3-style dose) needs no card here."""
    body = request("order-sign", spec("order-sign-context-r4.json")["context"], **via_fhir(fhir_server))

    response = post(client, service, "ketacds-order-sign", body)

    assert 200 == response.status_code
    assert {"cards": []} == response.json()


def test_order_select_checks_the_drafted_esketamine_dose_and_suggests_a_safer_one(
    client, service, fhir_server
):
    """112 mg thrice weekly beside the spec's drafted orders: dose and frequency cards, 84 mg suggested."""
    context = copy.deepcopy(spec("order-select-context-r4.json")["context"])
    context["draftOrders"]["entry"].append({"resource": esketamine_order()})
    context["selections"].append("MedicationRequest/draft-esketamine-1")

    response = post(
        client, service, "ketacds-order-select", request("order-select", context, **via_fhir(fhir_server))
    )

    assert 200 == response.status_code
    cards = {c["summary"]: c for c in response.json()["cards"]}
    dose = cards["Ordered esketamine dose is not 28, 56 or 84 mg (KCDS-ORD-001)"]
    frequency = cards["Ordered esketamine more often than twice a week (KCDS-ORD-002)"]
    assert "warning" == dose["indicator"] == frequency["indicator"]
    assert "at-most-one" == dose["selectionBehavior"]
    (suggestion,) = dose["suggestions"]
    action = suggestion["actions"][0]
    assert "update" == action["type"]
    assert {"value": 84, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"} == action[
        "resource"
    ]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert "ordered: esketamine 112 mg" in dose["detail"]
    assert "EU-ESK" in dose["detail"]
    assert {"benefit-outweighs-risk", "record-incorrect"} <= {r["code"] for r in dose["overrideReasons"]}
    assert dose["links"][0]["url"].endswith("/docs/rules/orders.md#kcds-ord-001")
    assert "suggestions" not in frequency  # the rules compute no safer frequency


def test_order_sign_shows_only_what_needs_attention(client, service, fhir_server):
    """At signing an allowed dose gives no dose card and no summary; the data gaps still show.

    An order carries no treatment week, so twice weekly cannot be checked against the phase:
    the unknown week is a gap (KCDS-ORD-181).
    """
    body = request(
        "order-sign",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order(56, 2))},
        **via_fhir(fhir_server),
    )

    response = post(client, service, "ketacds-order-sign", body)

    assert 200 == response.status_code
    assert [
        (
            "warning",
            "Missing data could change the answer: antidepressant treatment history, pre-dose blood"
            " pressure, treatment week",
        )
    ] == summaries(response)


def test_iv_ketamine_order_above_075_mg_per_kg_gets_the_conventional_dose(client, service, fhir_server):
    """100 mg IV for a 98.3 kg patient is 1.02 mg/kg: a caution card proposing 0.5 mg/kg (49.2 mg)."""
    # The record's own weights are years old, so not current (validity.yaml): weighed yesterday.
    weight = {
        "resourceType": "Observation",
        "id": "weight-yesterday",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
        "effectiveDateTime": "2026-11-20T14:00:00+00:00",
        "valueQuantity": {
            "value": 98.32605215136181,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }
    fhir_server.add([weight])
    body = request(
        "order-sign",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(ketamine_iv_order(100))},
        **via_fhir(fhir_server),
    )

    try:
        response = post(client, service, "ketacds-order-sign", body)
    finally:
        del fhir_server.resources["Observation/weight-yesterday"]

    card = next(c for c in response.json()["cards"] if "KCDS-ORD-003" in c["summary"])
    assert INDICATORS["cautions"] == card["indicator"]
    assert (
        "Change the dose to 49.2 mg (conventional dose in place of the order (actual body weight))"
        == card["suggestions"][0]["label"]
    )
    assert "(1.02 mg/kg)" in card["detail"]


def test_an_absolute_contraindication_is_critical(client, service, fhir_server):
    """An aortic aneurysm in the prefetched conditions makes the esketamine order critical."""
    resources = server_view(json.loads(synthea("03").read_text()), patient_id=SPEC_PATIENT)
    prefetch = prefetch_for(resources, SPEC_PATIENT, READ_CODES)
    prefetch["conditions"]["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": "aneurysm-1",
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "verificationStatus": {"coding": [{"code": "confirmed"}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I71.40"}]},
                "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
            }
        }
    )
    body = request(
        "order-sign",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order(56, 2))},
        prefetch=prefetch,
    )

    response = post(client, service, "ketacds-order-sign", body)

    first = response.json()["cards"][0]
    assert ("critical", "Aneurysmal vascular disease (KCDS-CI-001)") == (first["indicator"], first["summary"])
    assert "I71.40" in first["detail"]


def test_an_order_whose_route_cannot_be_told_gets_a_card_saying_so(client, service, fhir_server):
    """Ketamine without a route cannot be checked (IV and other routes differ): a warning card, no advice."""
    order = ketamine_iv_order(50)
    del order["dosageInstruction"][0]["route"]
    body = request(
        "order-select", {"patientId": SPEC_PATIENT, "draftOrders": draft(order)}, **via_fhir(fhir_server)
    )

    response = post(client, service, "ketacds-order-select", body)

    (card,) = response.json()["cards"]
    assert "warning" == card["indicator"]
    assert "cannot check this ketamine or esketamine order" in card["summary"]


def test_feedback_is_recorded_durably_and_queryable(client, service, fhir_server):
    """The spec's feedback examples are recorded; feedback on an issued card is read back with its rule."""
    issued = post(
        client,
        service,
        "ketacds-order-sign",
        request(
            "order-sign",
            {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())},
            **via_fhir(fhir_server),
        ),
    )
    card = next(c for c in issued.json()["cards"] if "KCDS-ORD-001" in c["summary"])
    examples = [
        spec(name)
        for name in (
            "feedback-suggestion-accepted.json",
            "feedback-overridden.json",
            "feedback-overridden-with-reason.json",
        )
    ]
    mine = copy.deepcopy(examples[2])
    mine["feedback"][0]["card"] = card["uuid"]
    feedback_url = f"{service.endpoint('ketacds-order-sign')}/feedback"

    answers = [
        client.post(
            "/cds-services/ketacds-order-sign/feedback",
            json=body,
            headers={"Authorization": f"Bearer {token(feedback_url)}"},
        )
        for body in [*examples, mine]
    ]
    query = client.get(
        "/cds-services/ketacds-order-sign/feedback",
        params={"card": card["uuid"]},
        headers={"Authorization": f"Bearer {token(feedback_url)}"},
    )

    assert [200, 200, 200, 200] == [a.status_code for a in answers]
    (row,) = query.json()["feedback"]
    assert ["KCDS-ORD-001"] == row["rule_ids"]
    assert "overridden" == row["outcome"]
    assert {
        "code": "d7ecf885",
        "system": "https://example.com/cds-hooks/override-reason-system",
        "display": None,
    } == row["overrideReason"]["reason"]
    assert "A comment entered by the clinician." == row["overrideReason"]["userComment"]


def test_logs_name_the_hook_instance_but_no_patient_data(client, service, caplog):
    """The service log has the hook and its instance id, never the patient's id, name, codes or values."""
    resources = server_view(json.loads(synthea("09").read_text()))
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    body = request(
        "patient-view",
        {"patientId": patient["id"]},
        prefetch=prefetch_for(resources, patient["id"], READ_CODES),
    )
    with caplog.at_level(logging.DEBUG):
        response = post(client, service, "ketacds-patient-view", body)
    text = "\n".join(record.getMessage() for record in caplog.records)

    assert 200 == response.status_code
    assert f"hookInstance={body['hookInstance']}" in text
    for secret in (patient["id"], patient["name"][0]["family"], "Epilepsy", "84757009", "Carbamazepine"):
        assert secret not in text


def test_every_card_link_resolves(client, service, fhir_server):
    """The rule-doc links of the cards answer 200 with the rule's anchor in the page."""
    body = request(
        "order-select",
        {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order())},
        **via_fhir(fhir_server),
    )
    cards = post(client, service, "ketacds-order-select", body).json()["cards"]
    links = {link["url"] for card in cards for link in card.get("links", [])}

    for url in links:
        page, _, anchor = url.partition("#")
        answer = client.get(page.removeprefix(service.url))
        assert 200 == answer.status_code, url
        assert f'id="{anchor}"' in answer.text or not anchor


def test_health_names_the_rules(client):
    """The health endpoint gives the ruleset version and digest and the FHIR mapping's."""
    health = client.get("/health").json()

    bundled = load_ruleset()
    assert ("ok", bundled.name, bundled.version) == (health["status"], health["ruleset"], health["version"])
    assert bundled.digest == health["digest"]
    assert 64 == len(health["digest"]) == len(health["fhir_mapping_digest"])


class TestMalformed:
    """Bad requests get a 4xx and a message a developer can act on; never a 5xx."""

    def test_unknown_service(self, client, service):
        """An unknown service id is 404."""
        response = post(client, service, "no-such-service", request("patient-view", {"patientId": "1"}))

        assert 404 == response.status_code

    def test_unknown_hook(self, client, service):
        """A hook the service does not answer is 400, naming the hook it does answer."""
        response = post(
            client, service, "ketacds-order-sign", request("medication-prescribe", {"patientId": "1"})
        )

        assert (400, "unknown hook 'medication-prescribe'; this service answers order-sign") == (
            response.status_code,
            response.json()["error"],
        )

    def test_hook_of_another_service(self, client, service):
        """A patient-view call to the order-sign service is 400."""
        response = post(client, service, "ketacds-order-sign", request("patient-view", {"patientId": "1"}))

        assert 400 == response.status_code
        assert "answers order-sign, not patient-view" in response.json()["error"]

    def test_bad_json(self, client, service):
        """A body that is not JSON is 400."""
        response = client.post(
            "/cds-services/ketacds-patient-view",
            content=b'{"hook": "patient-view",',
            headers={
                "Authorization": f"Bearer {token(service.endpoint('ketacds-patient-view'))}",
                "Content-Type": "application/json",
            },
        )

        assert (400, "the request body is not valid JSON") == (response.status_code, response.json()["error"])

    def test_deeply_nested_json(self, client, service):
        """JSON nested 100,000 deep is refused with a 4xx, not a crash."""
        body = (
            b'{"hook": "patient-view", "hookInstance": "x", "context": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}"
        )
        response = client.post(
            "/cds-services/ketacds-patient-view",
            content=body,
            headers={
                "Authorization": f"Bearer {token(service.endpoint('ketacds-patient-view'))}",
                "Content-Type": "application/json",
            },
        )

        assert 400 <= response.status_code < 500

    def test_wrong_types(self, client, service):
        """Fields of the wrong type are 422, each named."""
        response = post(
            client, service, "ketacds-patient-view", {"hook": 7, "hookInstance": ["x"], "context": "patient"}
        )

        assert 422 == response.status_code
        assert {
            "body.hook: Input should be a valid string",
            "body.context: Input should be a valid dictionary",
        } <= set(response.json()["problems"])

    def test_missing_patient_id(self, client, service, fhir_server):
        """A context without patientId is 422."""
        response = post(
            client,
            service,
            "ketacds-patient-view",
            request("patient-view", {"userId": "x"}, **via_fhir(fhir_server)),
        )

        assert (422, "context.patientId: a patient id (text) is required") == (
            response.status_code,
            response.json()["error"],
        )

    def test_order_hook_without_draft_orders(self, client, service):
        """An order hook whose draftOrders is not a Bundle is 422."""
        response = post(
            client,
            service,
            "ketacds-order-select",
            request("order-select", {"patientId": "1", "draftOrders": [1]}),
        )

        assert 422 == response.status_code
        assert "draftOrders" in response.json()["error"]

    def test_huge_body(self, client, service):
        """A body above the limit is 413 before it is read."""
        response = post(
            client,
            service,
            "ketacds-patient-view",
            request("patient-view", {"patientId": "1", "pad": "x" * 3_000_000}),
        )

        assert (413, "the request body is larger than 2000000 bytes") == (
            response.status_code,
            response.json()["error"],
        )

    def test_huge_chunked_body(self, client, service):
        """A chunked body without a length is cut off at the limit too."""

        def chunks():
            yield b'{"hook": "patient-view", "pad": "'
            for _ in range(300):
                yield b"x" * 10_000
            yield b'"}'

        response = client.post(
            "/cds-services/ketacds-patient-view",
            content=chunks(),
            headers={
                "Authorization": f"Bearer {token(service.endpoint('ketacds-patient-view'))}",
                "Content-Type": "application/json",
            },
        )

        assert 413 == response.status_code

    def test_feedback_with_a_naive_timestamp(self, client, service):
        """Feedback whose outcomeTimestamp has no timezone is 422."""
        url = f"{service.endpoint('ketacds-order-sign')}/feedback"
        body = {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2020-12-11T00:00:00"}]}
        response = client.post(
            "/cds-services/ketacds-order-sign/feedback",
            json=body,
            headers={"Authorization": f"Bearer {token(url)}"},
        )

        assert 422 == response.status_code


def test_openapi_document_is_published(client):
    """The OpenAPI document describes the hook call, feedback and the bearer scheme."""
    document = client.get("/openapi.json").json()

    assert {"/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback"} <= set(
        document["paths"]
    )
    assert "HTTPBearer" in document["components"]["securitySchemes"]


@pytest.mark.parametrize("number", ["01", "03", "04", "05", "06", "07", "09", "13", "14", "16"])
def test_every_synthea_patient_gets_cards_as_prefetch(client, service, number):
    """Each Synthea bundle, prefetched, gets a well-formed answer with a summary card per route."""
    resources = server_view(json.loads(synthea(number).read_text()))
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    body = request(
        "patient-view",
        {"patientId": patient["id"]},
        prefetch=prefetch_for(resources, patient["id"], READ_CODES),
    )

    response = post(client, service, "ketacds-patient-view", body)

    assert 200 == response.status_code
    CardsResponse.model_validate(response.json())
    routes = len(service.settings.patient_view_routes)
    if "deceasedDateTime" in patient or patient.get("deceasedBoolean"):
        # Recorded as deceased: one "not assessed" card per route, never a status.
        assert routes == sum(1 for _, summary in summaries(response) if summary.startswith("Not assessed"))
    else:
        assert routes == sum(1 for _, summary in summaries(response) if summary.endswith("— ketacds"))


def test_an_order_for_a_program_the_rules_refuse_is_422_naming_the_missing_concepts(service, fhir_server):
    """A Canadian service refuses an esketamine order: no Canadian esketamine label is encoded.

    The service never answers with fewer rules: 422, naming the missing concepts.
    """
    port = free_port()
    settings = attrs.evolve(
        service.settings,
        public_url=f"http://127.0.0.1:{port}",
        jurisdiction="CA",
        patient_view_routes=("ketamine-iv",),
    )
    with (
        UvicornThread(create_app(settings, clock=lambda: NOW), port) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        canadian = Service(url=server.url, settings=settings, rsa_key=service.rsa_key)
        body = request(
            "order-sign",
            {"patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order(56, 2))},
            **via_fhir(fhir_server),
        )

        response = post(client, canadian, "ketacds-order-sign", body)

    assert 422 == response.status_code
    assert "refuses esketamine-nasal in CA" in response.json()["error"]
    assert "CI_ANEURYSM" in response.json()["error"]


@pytest.mark.parametrize(
    ("concept", "route"),
    [
        ({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}]}, "46713006"),
        ({"text": "ketamine 100 mg/mL nasal spray"}, None),
    ],
    ids=["rxnorm-ketamine-nasal-route", "ketamine-nasal-spray-by-name"],
)
def test_an_intranasal_racemic_ketamine_order_is_refused_never_assessed_as_esketamine(
    service, client, fhir_server, concept, route
):
    """Racemic ketamine by the nasal route (coded, or only named) is ketamine-intranasal: 422 (issue 15).

    0.3.0 answered 200 with a "cannot check" card; it must never be read as esketamine.
    """
    order = esketamine_order(50, 2, rid="draft-ketamine-nasal-1", route=route)
    order["medicationCodeableConcept"] = concept
    body = request(
        "order-sign", {"patientId": SPEC_PATIENT, "draftOrders": draft(order)}, **via_fhir(fhir_server)
    )

    response = post(client, service, "ketacds-order-sign", body)

    assert 422 == response.status_code
    error = response.json()["error"]
    assert "refuses ketamine-intranasal in US" in error
    assert "must not be applied to racemic ketamine" in error
    assert "esketamine-nasal in" not in error
