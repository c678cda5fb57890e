"""Real servers on loopback for the service tests: the ketacds service (uvicorn) and a stub FHIR server.

Both listen on 127.0.0.1 on a free port and answer real HTTP. The stub FHIR server
holds the Synthea bundles as a FHIR server would after processing their
transactions (``urn:uuid:`` references become ``Type/id``), and pages searches.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import jwt
import uvicorn

from support import CDS_HOOKS

EXAMPLE_ISSUER = "https://fhir-ehr.example.com/"
EXAMPLE_KID = "example-kid"
#: The patient id of the specification's examples; the stub FHIR server serves Synthea patient 03 under it.
SPEC_PATIENT = "1288992"
URL_ISSUER = "https://ehr-two.example.org"
RSA_ISSUER = "https://rsa-ehr.example.org"


@attrs.frozen
class Service:
    """A running ketacds service: its URL, its settings, and the RSA key one test issuer signs with."""

    url: str
    settings: Any
    rsa_key: Any

    def endpoint(self, service_id: str) -> str:
        """The URL a token's aud must name for this service."""
        return f"{self.settings.base_url}/cds-services/{service_id}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UvicornThread:
    """An ASGI app served by a real uvicorn server on a thread of this process."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _rewrite(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value


def server_view(bundle: Mapping[str, Any], patient_id: str | None = None) -> list[dict[str, Any]]:
    """A transaction bundle's resources as a FHIR server stores them (optionally under another patient id)."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    resources = [_rewrite(e["resource"], ids) for e in bundle["entry"]]
    if patient_id is None:
        return resources
    (old,) = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    return [
        _rewrite(
            {**r, "id": patient_id} if r["id"] == old else r, {f"Patient/{old}": f"Patient/{patient_id}"}
        )
        for r in resources
    ]


def esketamine_order(
    dose: int = 112, per_week: int = 3, *, rid: str = "draft-esketamine-1", route: str | None = "46713006"
) -> dict[str, Any]:
    """A drafted esketamine MedicationRequest (Spravato, nasal route by default) for the order hooks."""
    dosage: dict[str, Any] = {
        "timing": {"repeat": {"frequency": per_week, "period": 1, "periodUnit": "wk"}},
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose,
                    "unit": "mg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg",
                }
            }
        ],
    }
    if route:
        dosage["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": route}]}
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Spravato (esketamine) 28 MG nasal spray device"},
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
        "dosageInstruction": [dosage],
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def prefetch_for(
    resources: list[dict[str, Any]], patient_id: str, observation_codes: set[str]
) -> dict[str, Any]:
    """What an EHR would prefetch for the service's templates."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    (patient,) = [r for r in by_type["Patient"] if r["id"] == patient_id]
    observations = [
        o
        for o in by_type.get("Observation", [])
        if {c.get("code") for c in o["code"].get("coding", [])} & observation_codes
    ]
    return {
        "patient": patient,
        "conditions": searchset(by_type.get("Condition", [])),
        "medications": searchset(by_type.get("MedicationRequest", [])),
        "medicationStatements": searchset(by_type.get("MedicationStatement", [])),
        "observations": searchset(observations),
        "allergies": searchset(by_type.get("AllergyIntolerance", [])),
    }


class LoopbackHTTP:
    """A real HTTP server on 127.0.0.1 (a thread of this process) whose GET answers a function gives.

    ``answer(path, headers)`` returns ``(status, body bytes)``; every path asked is kept in ``requests``.
    """

    def __init__(self, answer: Callable[[str, Mapping[str, str]], tuple[int, bytes]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, body = answer(self.path, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StubFhirServer:
    """A small FHIR R4 server on loopback: reads, searches by patient (and code), pages of ``page_size``."""

    def __init__(self, token: str = "some-opaque-fhir-access-token", page_size: int = 50) -> None:
        self.token = token
        self.page_size = page_size
        self.resources: dict[str, dict[str, Any]] = {}
        self.jwks: dict[str, Any] = {"keys": []}
        #: Other servers under this one: ``{url}/{name}/...`` is answered by ``variants[name](path)``
        #: (the path after ``{name}``, as ``answer`` takes it) with raw bytes, after the token is checked.
        self.variants: dict[str, Callable[[str], tuple[int, bytes]]] = {}
        self.http: LoopbackHTTP | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/fhir"

    @property
    def requests(self) -> list[str]:
        assert self.http is not None
        return self.http.requests

    def _handle(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        if path == "/fhir/jwks.json":
            return 200, json.dumps(self.jwks).encode()
        if headers.get("Authorization") != f"Bearer {self.token}":
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
            return 401, json.dumps(outcome).encode()
        name, _, rest = path.removeprefix("/fhir/").partition("/")
        if name in self.variants:
            return self.variants[name](f"/fhir/{rest}")
        status, body = self.answer(path)
        return status, json.dumps(body).encode()

    def add(self, resources: list[dict[str, Any]]) -> None:
        for r in resources:
            self.resources[f"{r['resourceType']}/{r['id']}"] = r

    def answer(self, path: str) -> tuple[int, Any]:
        parts = urlsplit(path)
        route = parts.path.removeprefix("/fhir/").strip("/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "/" in route:
            resource = self.resources.get(route)
            return (200, resource) if resource else (404, {"resourceType": "OperationOutcome", "issue": []})
        patient = query.get("patient")
        codes = {c.split("|")[-1] for c in query.get("code", "").split(",") if c}
        found = [
            r
            for key, r in sorted(self.resources.items())
            if key.startswith(f"{route}/")
            and (r.get("subject") or r.get("patient") or {}).get("reference") == f"Patient/{patient}"
            and (not codes or {c.get("code") for c in r.get("code", {}).get("coding", [])} & codes)
        ]
        page = int(query.get("_page", "0"))
        chunk = found[page * self.page_size : (page + 1) * self.page_size]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": r} for r in chunk],
        }
        if (page + 1) * self.page_size < len(found):
            rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "_page")
            bundle["link"] = [{"relation": "next", "url": f"{self.url}/{route}?{rest}&_page={page + 1}"}]
        return 200, bundle

    def __enter__(self) -> StubFhirServer:
        self.http = LoopbackHTTP(self._handle)
        self.port = self.http.port
        self.url = f"{self.http.url}/fhir"
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self.http is not None
        self.http.close()


def example_private_key() -> jwt.PyJWK:
    return jwt.PyJWK(json.loads((CDS_HOOKS / "jwk-private-EXAMPLE-ONLY.json").read_text()))


def token(
    aud: str,
    *,
    iss: str = EXAMPLE_ISSUER,
    now: float | None = None,
    lifetime: int = 300,
    jti: str | None = None,
    drop: tuple[str, ...] = (),
    headers: dict[str, Any] | None = None,
) -> str:
    """A fresh ES384 token signed with the specification's example private key."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": iss,
        "aud": aud,
        "exp": issued + lifetime,
        "iat": issued,
        "jti": jti or str(uuid.uuid4()),
    }
    for name in drop:
        claims.pop(name)
    return jwt.encode(
        claims, example_private_key().key, algorithm="ES384", headers={"kid": EXAMPLE_KID, **(headers or {})}
    )


def write_issuers(directory: Path) -> Path:
    """An issuers file trusting the specification's example issuer with its example public keys."""
    path = directory / "issuers.yaml"
    path.write_text(
        f"issuers:\n  - iss: {EXAMPLE_ISSUER}\n    jwks_file: {CDS_HOOKS / 'jwks-public.json'}\n",
        encoding="utf-8",
    )
    return path


def iter_json(directory: Path, pattern: str) -> Iterator[tuple[str, Any]]:
    for path in sorted(directory.glob(pattern)):
        yield path.name, json.loads(path.read_text())
