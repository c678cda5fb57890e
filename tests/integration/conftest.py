"""Real servers for the service tests: the ketacds CDS Hooks service and a stub FHIR server, on loopback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ketacds.ruleset.load import load_ruleset
from ketacds.ruleset.scope import coverage
from ketacds.server.app import create_app
from ketacds.server.settings import Issuer, ServiceSettings, load_issuers
from servers import (
    RSA_ISSUER,
    SPEC_PATIENT,
    URL_ISSUER,
    Service,
    StubFhirServer,
    UvicornThread,
    free_port,
    server_view,
    write_issuers,
)
from support import CDS_HOOKS, FHIR_BUNDLES

NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[StubFhirServer]:
    with StubFhirServer(page_size=20) as stub:
        for path in sorted(FHIR_BUNDLES.glob("synthea-r4-*.json")):
            stub.add(server_view(json.loads(path.read_text())))
        (spec_patient,) = FHIR_BUNDLES.glob("synthea-r4-03-*.json")
        stub.add(server_view(json.loads(spec_patient.read_text()), patient_id=SPEC_PATIENT))
        stub.jwks = json.loads((CDS_HOOKS / "jwks-public.json").read_text())
        yield stub


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, fhir_server: StubFhirServer) -> Iterator[Service]:
    directory: Path = tmp_path_factory.mktemp("service")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    (directory / "rsa-jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "rsa-1", "use": "sig"}]}))
    port = free_port()
    settings = ServiceSettings(
        public_url=f"http://127.0.0.1:{port}",
        issuers=(
            *load_issuers(write_issuers(directory)),
            Issuer(iss=URL_ISSUER, jwks_url=f"{fhir_server.url}/jwks.json"),
            Issuer(iss=RSA_ISSUER, jwks_file=str(directory / "rsa-jwks.json")),
        ),
        database=str(directory / "cds.sqlite3"),
        fhir_servers=(fhir_server.url,),
        # `ketacds serve` refuses a patient-view route the rules refuse in its jurisdiction,
        # so the service offers only the routes the rules assess in the US (today both).
        patient_view_routes=tuple(
            route
            for route in ("esketamine-nasal", "ketamine-iv")
            if coverage(load_ruleset(), route, "US").state == "covered"
        ),
        max_body_bytes=2_000_000,
    )
    with UvicornThread(create_app(settings, clock=lambda: NOW), port) as server:
        yield Service(url=server.url, settings=settings, rsa_key=rsa_key)


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as http:
        yield http
