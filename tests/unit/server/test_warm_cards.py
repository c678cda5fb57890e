"""A warm service answers with the same cards as a cold one (issue 18: parts remembered per ruleset).

The cards are built from per-ruleset parts kept by the process
(:mod:`ketacds.adapters.card_parts`) and the FHIR resources are read through memos kept
by content: none of it may change an answer. Every Synthea bundle of ``tests/data`` is
sent as ``patient-view`` and ``order-sign`` to a service whose caches were just emptied,
then again to the same (now warm) service; the cards must be the same, uuids aside.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
from pathlib import Path
from typing import Any

import httpx

from ketacds.adapters import card_parts
from ketacds.adapters.fhir import reading, records, validation
from ketacds.server.app import create_app
from ketacds.server.settings import ServiceSettings
from servers import prefetch_for, server_view
from support import FHIR_BUNDLES

NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)
_UUID = re.compile(r'"uuid": "[^"]*"')

ORDER = {
    "resourceType": "MedicationRequest",
    "id": "warm-order",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"text": "esketamine 28 MG nasal spray (Spravato)"},
    "dosageInstruction": [
        {
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "46713006"}]},
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
            "doseAndRate": [
                {
                    "doseQuantity": {
                        "value": 112,
                        "unit": "mg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mg",
                    }
                }
            ],
        }
    ],
}


def _requests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(FHIR_BUNDLES.glob("synthea-r4-*.json")):
        resources = server_view(json.loads(path.read_text()))
        (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
        codes = {
            c["code"] for r in resources if r["resourceType"] == "Observation" for c in r["code"]["coding"]
        }
        prefetch = prefetch_for(resources, patient["id"], codes)
        context = {"userId": "Practitioner/warm", "patientId": patient["id"]}
        out.append(("patient-view", {"hook": "patient-view", "context": context, "prefetch": prefetch}))
        order = {**ORDER, "subject": {"reference": f"Patient/{patient['id']}"}}
        draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
        body = {"hook": "order-sign", "context": {**context, "draftOrders": draft}, "prefetch": prefetch}
        out.append(("order-sign", body))
    return out


async def _answers(client: httpx.AsyncClient, requests: list[tuple[str, dict[str, Any]]]) -> list[str]:
    answers = []
    for number, (hook, body) in enumerate(requests):
        instance = f"00000000-0000-4000-8000-{number:012d}"
        response = await client.post(f"/cds-services/ketacds-{hook}", json={**body, "hookInstance": instance})
        assert response.status_code == 200, response.text
        answers.append(_UUID.sub('"uuid": "-"', json.dumps(response.json(), sort_keys=True)))
    return answers


def _forget_everything() -> None:
    """Empty every per-process memory the answers go through, as in a service just started."""
    card_parts._kept.clear()
    records._kept.clear()
    with reading._READS.lock:
        reading._READS.entries.clear()
    with validation._VALIDATED.lock:
        validation._VALIDATED.entries.clear()


async def _cold_warm_again(tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    counter = itertools.count()
    settings = ServiceSettings(public_url="http://127.0.0.1:8080", auth=False, database=str(tmp_path / "db"))
    app = create_app(settings, clock=lambda: NOW, new_uuid=lambda: f"uuid-{next(counter)}")
    startup: asyncio.Queue[Any] = asyncio.Queue()
    ready = asyncio.Event()

    async def lifespan_send(message: Any) -> None:
        if message["type"].startswith("lifespan.startup"):
            ready.set()

    startup.put_nowait({"type": "lifespan.startup"})
    life = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, lifespan_send)
    )
    await ready.wait()
    requests = _requests()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        _forget_everything()
        cold = await _answers(client, requests)
        warm = await _answers(client, requests)
        again = await _answers(client, list(reversed(requests)))
    startup.put_nowait({"type": "lifespan.shutdown"})
    await life
    return cold, warm, again


def test_a_warm_service_gives_the_cards_of_a_cold_one(tmp_path):
    cold, warm, again = asyncio.run(_cold_warm_again(tmp_path))
    assert warm == cold
    assert again == list(reversed(cold))
    assert any('"suggestions"' in answer for answer in cold)  # the order's dose suggestion is compared too
