"""Malformed and hostile requests to the real service: never a 5xx, never an answer past a limit.

Found by a 1,250-request attack: huge numbers in observations and orders, a coding
that is not a list, a 10 MB header, ``aud`` as a list, two Authorization headers.
The decisions are documented in docs/security.md.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from servers import (
    EXAMPLE_ISSUER,
    EXAMPLE_KID,
    SPEC_PATIENT,
    Service,
    example_private_key,
    server_view,
    token,
)
from servers import esketamine_order as draft_esketamine_order
from support import synthea

PATIENT_VIEW = "ketacds-patient-view"


def post(client: httpx.Client, service: Service, service_id: str, body: Any) -> httpx.Response:
    auth = {"Authorization": f"Bearer {token(service.endpoint(service_id))}"}
    return client.post(f"/cds-services/{service_id}", json=body, headers=auth)


def request(hook: str, context: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, **fields}


def esketamine_order(dose: int) -> dict[str, Any]:
    return draft_esketamine_order(dose, 2)


def draft(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def patient_view(prefetch_extra: list[dict[str, Any]]) -> dict[str, Any]:
    """A patient-view call for the spec patient, prefetched, with ``prefetch_extra`` as observations."""
    resources = server_view(json.loads(synthea("03").read_text()), patient_id=SPEC_PATIENT)
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    return request(
        "patient-view",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT},
        prefetch={
            "patient": patient,
            "conditions": empty,
            "medications": empty,
            "medicationStatements": empty,
            "allergies": empty,
            "observations": {**empty, "entry": [{"resource": r} for r in prefetch_extra]},
        },
    )


def weight(value: Any, rid: str = "w1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
        "effectiveDateTime": "2026-11-20T09:00:00Z",
        "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }


def raw_post(client: httpx.Client, service: Service, service_id: str, text: str) -> httpx.Response:
    """POST text as it is (numbers a JSON encoder would refuse to write)."""
    headers = {
        "Authorization": f"Bearer {token(service.endpoint(service_id))}",
        "Content-Type": "application/json",
    }
    return client.post(f"/cds-services/{service_id}", content=text.encode(), headers=headers)


def quality_messages(response: httpx.Response) -> str:
    return "\n".join(card["detail"] for card in response.json()["cards"])


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("1e300", "number too large"),
        ("1e-40", "number too small"),
        ("1E+999999999", "numbers must be finite"),  # JSON parsers read it as infinity
        ("-1E+999999999", "numbers must be finite"),
    ],
)
def test_a_number_out_of_range_in_an_observation_is_left_out_and_reported(client, service, number, reason):
    """The observation is not read; a data-quality entry says which value and why; the answer is 200."""
    body = json.dumps(patient_view([weight(123456.0)])).replace("123456.0", number)

    response = raw_post(client, service, PATIENT_VIEW, body)

    assert 200 == response.status_code, response.text
    assert f"Not read: valueQuantity.value: {reason}" in quality_messages(response)
    assert "`Observation/w1` `valueQuantity.value`" in quality_messages(response)


def test_an_integer_too_long_to_parse_is_a_400(client, service):
    body = json.dumps(patient_view([weight(123456.0)])).replace("123456.0", "9" * 5000)

    response = raw_post(client, service, PATIENT_VIEW, body)

    assert 400 == response.status_code, response.text


@pytest.mark.parametrize(
    ("number", "reason"), [("1e26", "number too large"), ("1E+999999999", "numbers must be finite")]
)
def test_a_dose_out_of_range_in_a_draft_order_is_reported_not_a_500(client, service, number, reason):
    """The order cannot be read, and the answer says why (no dose check is pretended)."""
    call = request(
        "order-sign",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "draftOrders": draft(esketamine_order(777))},
        prefetch=patient_view([])["prefetch"],
    )
    text = json.dumps(call).replace('"value": 777', f'"value": {number}')

    response = raw_post(client, service, "ketacds-order-sign", text)

    assert 200 == response.status_code, response.text
    assert reason in response.text


@pytest.mark.parametrize("coding", [True, 5, "text", {"system": "x"}, [True, None, 3]])
def test_a_coding_that_is_not_a_list_of_codings_is_not_a_500(client, service, coding: Any):
    observation = weight(70)
    observation["code"] = {"coding": coding}

    response = post(client, service, PATIENT_VIEW, patient_view([observation]))

    assert 200 == response.status_code, response.text


@pytest.mark.parametrize("coding", [True, 5, [True, None, 3]])
def test_a_draft_order_coding_that_is_not_a_list_of_codings_is_not_a_500(client, service, coding: Any):
    """Found by the service fuzz target (``make fuzz``): a TypeError in reading the drafted drug."""
    order = esketamine_order(56)
    order["medicationCodeableConcept"]["coding"] = coding
    call = request(
        "order-sign",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "draftOrders": draft(order)},
        prefetch=patient_view([])["prefetch"],
    )

    response = post(client, service, "ketacds-order-sign", call)

    assert 200 == response.status_code, response.text


def test_a_panel_component_without_a_code_is_not_a_500(client, service):
    """Found by the service fuzz target: a null ``component.code`` gave an AttributeError."""
    panel = weight(70, "bp1")
    panel["code"] = {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}
    del panel["valueQuantity"]
    panel["component"] = [{"code": None, "valueQuantity": {"value": 150, "unit": "mm[Hg]"}}]

    response = post(client, service, PATIENT_VIEW, patient_view([panel]))

    assert 200 == response.status_code, response.text


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDC00", "x\\ud83dy"])
def test_a_lone_surrogate_escape_is_a_400_not_a_500(client, service, escape: str):
    """Found by the service fuzz target: a lone surrogate echoed into a card made the answer a 500."""
    order = esketamine_order(56)
    order["medicationCodeableConcept"]["text"] = "ESCAPE Spravato 28 MG nasal spray"
    call = request(
        "order-sign",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "draftOrders": draft(order)},
        prefetch=patient_view([])["prefetch"],
    )
    text = json.dumps(call).replace("ESCAPE", escape)

    response = raw_post(client, service, "ketacds-order-sign", text)

    assert 400 == response.status_code, response.text
    assert "lone surrogate" in response.text


def test_a_body_that_is_not_utf8_is_a_400_not_a_500(client, service):
    """UTF-8-encoded surrogate bytes were read by json.loads (surrogatepass), then a 500."""
    order = esketamine_order(56)
    order["medicationCodeableConcept"]["text"] = "ESCAPE Spravato 28 MG nasal spray"
    call = request(
        "order-sign",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "draftOrders": draft(order)},
        prefetch=patient_view([])["prefetch"],
    )
    body = json.dumps(call).encode().replace(b"ESCAPE", b"\xed\xa0\x80")
    headers = {
        "Authorization": f"Bearer {token(service.endpoint('ketacds-order-sign'))}",
        "Content-Type": "application/json",
    }

    response = client.post("/cds-services/ketacds-order-sign", content=body, headers=headers)

    assert 400 == response.status_code, response.text
    assert "not UTF-8" in response.text


def test_a_surrogate_pair_escape_is_read(client, service):
    order = esketamine_order(56)
    order["medicationCodeableConcept"]["text"] = "\U0001f48a Spravato 28 MG nasal spray"
    call = request(
        "order-sign",
        {"userId": "Practitioner/1", "patientId": SPEC_PATIENT, "draftOrders": draft(order)},
        prefetch=patient_view([])["prefetch"],
    )

    response = raw_post(client, service, "ketacds-order-sign", json.dumps(call))  # ensure_ascii: a pair

    assert 200 == response.status_code, response.text


def test_links_that_are_not_a_list_are_not_a_500(client, service):
    body = patient_view([])
    body["prefetch"]["conditions"]["link"] = True

    response = post(client, service, PATIENT_VIEW, body)

    assert response.status_code < 500, response.text


def raw_http(service: Service, head: bytes, timeout: float = 30) -> bytes:
    """Send ``head`` on a fresh connection; return all that comes back."""
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # the server may close before reading it all; its answer is below
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def test_a_10_mb_header_is_refused_before_anything_is_parsed(service):
    head = (
        f"POST /cds-services/{PATIENT_VIEW} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode()
        + b"a" * 10_000_000
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )

    answer = raw_http(service, head)

    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 431"), status
    assert b"request headers are larger" in answer


def test_many_headers_are_refused(service):
    lines = b"".join(f"X-H{i}: v\r\n".encode() for i in range(2000))
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"

    status = raw_http(service, head).split(b"\r\n", 1)[0]

    assert status.startswith(b"HTTP/1.1 431"), status


def test_ordinary_headers_still_work(client):
    assert 200 == client.get("/health", headers={"X-Trace": "a" * 4000}).status_code


def test_aud_as_a_list_is_refused(client, service):
    """The docs say aud must equal the service URL: a list (even holding it) is refused."""
    now = int(time.time())
    claims = {
        "iss": EXAMPLE_ISSUER,
        "aud": [service.endpoint(PATIENT_VIEW), "https://other.example.com"],
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    signed = jwt.encode(claims, example_private_key().key, algorithm="ES384", headers={"kid": EXAMPLE_KID})

    response = client.post(
        f"/cds-services/{PATIENT_VIEW}",
        json=patient_view([]),
        headers={"Authorization": f"Bearer {signed}"},
    )

    assert 401 == response.status_code
    assert "aud" in response.json()["error"]


def test_two_authorization_headers_are_refused(service):
    """Which of two tokens would be checked is ambiguous: both are refused, whatever they hold."""
    good = token(service.endpoint(PATIENT_VIEW))
    body = json.dumps(patient_view([])).encode()
    head = (
        f"POST /cds-services/{PATIENT_VIEW} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {good}\r\nAuthorization: Bearer {good}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    answer = raw_http(service, head)

    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"more than one Authorization header" in answer


def test_a_key_given_twice_is_a_400_naming_it(client, service):
    """A weight whose value is given twice ("value": 190, "value": 136) is refused, never read as the last."""
    body = json.dumps(patient_view([weight(136)]))
    assert 200 == raw_post(client, service, PATIENT_VIEW, body).status_code

    response = raw_post(
        client, service, PATIENT_VIEW, body.replace('"value": 136', '"value": 190, "value": 136', 1)
    )

    assert 400 == response.status_code, response.text
    assert "the request body is not valid JSON" == response.json()["error"]
    assert "duplicate key 'value'" in " ".join(response.json()["problems"])
