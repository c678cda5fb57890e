"""The service's parts alone: settings, issuers, the SQLite store, FHIR fetching, JWKS keys, body limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx
import pytest

from ketacds import InputError
from ketacds.server import fhir_client
from ketacds.server.app import BodyLimit
from ketacds.server.auth import AuthError, TokenVerifier
from ketacds.server.settings import ENVIRONMENT_VARIABLE, Issuer, ServiceSettings, load_issuers
from ketacds.server.store import Store
from servers import EXAMPLE_ISSUER, LoopbackHTTP, token
from support import CDS_HOOKS

NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)
ISSUER = Issuer(iss=EXAMPLE_ISSUER, jwks_file=str(CDS_HOOKS / "jwks-public.json"))


class Loopback(LoopbackHTTP):
    """A loopback server whose answers the test decides, path by path (query strings ignored)."""

    def __init__(self, routes: dict[str, Callable[[], tuple[int, bytes]]]) -> None:
        super().__init__(lambda path, _headers: routes.get(path.split("?")[0], lambda: (404, b"{}"))())


@pytest.fixture
def loopback() -> Iterator[Callable[[dict[str, Callable[[], tuple[int, bytes]]]], Loopback]]:
    servers: list[Loopback] = []

    def start(routes: dict[str, Callable[[], tuple[int, bytes]]]) -> Loopback:
        servers.append(Loopback(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class TestSettings:
    def test_auth_needs_issuers(self):
        """Authentication on and no trusted issuer: refused, naming the two ways out."""
        with pytest.raises(ValueError, match=r"--issuers.*--insecure-no-auth"):
            ServiceSettings(public_url="http://127.0.0.1:8080")

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"public_url": "cds.example.org"}, "must be an http"),
            ({"patient_view_routes": ("ketamine-oral",)}, "unknown route"),
            ({"backend": "drools"}, "unknown engine backend"),
        ],
    )
    def test_invalid_settings(self, fields, message):
        """A public URL without a scheme, or an unknown route, is refused."""
        with pytest.raises(ValueError, match=message):
            ServiceSettings(**{"public_url": "http://x", "auth": False, **fields})

    def test_json_round_trip_through_the_environment(self):
        """Workers read back exactly the settings the command line built."""
        settings = ServiceSettings(
            public_url="https://cds.example.org/", issuers=(ISSUER,), fhir_servers=["https://ehr/"]
        )
        environment = {ENVIRONMENT_VARIABLE: settings.to_json()}
        compiled = attrs.evolve(settings, backend="compiled")

        assert settings == ServiceSettings.from_environment(environment)
        assert compiled == ServiceSettings.from_environment({ENVIRONMENT_VARIABLE: compiled.to_json()})
        assert "https://cds.example.org/docs/rules" == settings.docs_url
        with pytest.raises(RuntimeError, match="ketacds serve"):
            ServiceSettings.from_environment({})

    def test_an_issuer_has_exactly_one_key_source(self):
        """Both or neither of jwks_url and jwks_file is refused."""
        with pytest.raises(ValueError, match="exactly one"):
            Issuer(iss="x", jwks_url="https://a", jwks_file="b")

    def test_issuers_file(self, tmp_path):
        """A relative jwks_file is resolved next to the issuers file (and read there, to fail early)."""
        (tmp_path / "keys.json").write_text('{"keys": []}')
        path = tmp_path / "issuers.yaml"
        path.write_text(
            "issuers:\n  - {iss: a, jwks_file: keys.json}\n  - {iss: b, jwks_url: 'https://b/jwks'}\n"
        )

        assert (
            Issuer(iss="a", jwks_file=str(tmp_path / "keys.json")),
            Issuer(iss="b", jwks_url="https://b/jwks"),
        ) == load_issuers(path)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("issuers: []\n", "non-empty list"),
            ("issuers:\n  - {jwks_url: x}\n", "needs iss"),
            ("issuers:\n  - {iss: a, jwks_url: x, secret: y}\n", "issuers\\[0\\].secret: unknown field"),
            ("issuers:\n  - {iss: a}\n", "exactly one"),
            ("issuers: [\n", "invalid YAML"),
        ],
    )
    def test_bad_issuers_files(self, tmp_path, text, message):
        """Each mistake in an issuers file is an input error naming it."""
        path = tmp_path / "issuers.yaml"
        path.write_text(text)
        with pytest.raises(InputError, match=message):
            load_issuers(path)

    def test_missing_issuers_file(self, tmp_path):
        """A missing issuers file is an input error."""
        with pytest.raises(InputError, match="cannot read file"):
            load_issuers(tmp_path / "none.yaml")


class TestStore:
    def test_token_ids_are_remembered_per_issuer(self, tmp_path):
        """A jti is accepted once per issuer, also from another connection (worker) to the same file."""
        first, second = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")

        assert first.remember_token("a", "j1", 10, NOW)
        assert not second.remember_token("a", "j1", 10, NOW)
        assert second.remember_token("b", "j1", 10, NOW)

    def test_expired_token_ids_are_forgotten_eventually(self, tmp_path):
        """Every 500 ids, those expired more than a day ago are deleted."""
        store = Store(tmp_path / "s.db")
        for i in range(500):
            store.remember_token("a", f"j{i}", 0, NOW)

        assert store.remember_token("a", "j0", 0, NOW)

    def test_feedback_queries(self, tmp_path):
        """Feedback reads back newest first, filtered by card, outcome, rule and time."""
        store = Store(tmp_path / "s.db")
        store.record_cards([("c1", "svc", "order-sign", "h1", ["KCDS-ORD-001"], "warning", "r 1", "d")], NOW)
        items = [
            {
                "card": "c1",
                "outcome": "overridden",
                "overrideReason": {"reason": {"code": "x", "system": "s"}},
                "outcomeTimestamp": "t1",
            },
            {
                "card": "c2",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "s1"}],
                "outcomeTimestamp": "t2",
            },
        ]

        assert 2 == store.record_feedback("svc", items, "iss", NOW)
        assert ["c2", "c1"] == [r["card"] for r in store.query_feedback()]
        assert [["KCDS-ORD-001"]] == [r["rule_ids"] for r in store.query_feedback(rule_id="KCDS-ORD-001")]
        assert [[{"id": "s1"}]] == [
            r["acceptedSuggestions"] for r in store.query_feedback(outcome="accepted")
        ]
        assert [] == store.query_feedback(since="2030-01-01")
        assert [None] == [r["overrideReason"] for r in store.query_feedback(card="c2", service="svc")]

    def test_a_failed_feedback_batch_records_nothing(self, tmp_path):
        """Feedback is recorded all or nothing."""
        store = Store(tmp_path / "s.db")
        with pytest.raises(KeyError):
            store.record_feedback(
                "svc",
                [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "t"}, {"card": "c2"}],
                None,
                NOW,
            )

        assert [] == store.query_feedback()


class TestFhirFetching:
    def bundle(self, entries: int, next_url: str | None = None) -> bytes:
        data: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Patient", "id": str(i)}} for i in range(entries)],
        }
        if next_url:
            data["link"] = [{"relation": "next", "url": next_url}]
        return json.dumps(data).encode()

    def fetch(self, server: Loopback, query: str, timeout: float = 5.0) -> Any:
        async def go() -> Any:
            async with httpx.AsyncClient() as client:
                return await fhir_client.fetch(client, server.url, query, "token", timeout)

        return run(go())

    def test_pages_are_followed_and_merged(self, loopback):
        """A search with a next page is fetched whole."""
        routes: dict[str, Callable[[], tuple[int, bytes]]] = {"/page2": lambda: (200, self.bundle(1))}
        server = loopback(routes)
        routes["/Patient"] = lambda: (200, self.bundle(2, f"{server.url}/page2"))

        merged = self.fetch(server, "Patient?name=x")

        assert 3 == len(merged["entry"])

    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            ((500, b"{}"), "HTTP 500"),
            ((200, b"<html>"), "not JSON"),
            ((200, b'{"resourceType": "Patient", "id": "1", "id": "2"}'), "duplicate key 'id'"),
        ],
    )
    def test_failures(self, loopback, answer, message):
        """A server error, a non-JSON answer or one naming a key twice is a FetchError naming it."""
        server = loopback({"/Patient/1": lambda: answer})
        with pytest.raises(fhir_client.FetchError, match=message):
            self.fetch(server, "Patient/1")

    def test_timeout(self, loopback):
        """No answer within the timeout is a FetchError."""

        def slow() -> tuple[int, bytes]:
            time.sleep(1.0)
            return 200, b"{}"

        server = loopback({"/Patient/1": slow})
        with pytest.raises(fhir_client.FetchError, match=r"no answer within 0\.2 s"):
            self.fetch(server, "Patient/1", timeout=0.2)

    def test_size_and_page_limits(self, loopback, monkeypatch):
        """Too large an answer, or too many pages, is a FetchError."""
        routes: dict[str, Callable[[], tuple[int, bytes]]] = {
            "/big": lambda: (200, b"[" + b"1," * 1000 + b"1]")
        }
        server = loopback(routes)
        routes["/loop"] = lambda: (200, self.bundle(1, f"{server.url}/loop"))
        monkeypatch.setattr(fhir_client, "MAX_PAGES", 3)
        with pytest.raises(fhir_client.FetchError, match="more than 3 pages"):
            self.fetch(server, "loop")

        monkeypatch.setattr(fhir_client, "MAX_RESPONSE_BYTES", 100)
        with pytest.raises(fhir_client.FetchError, match="larger than 100 bytes"):
            self.fetch(server, "big")

    def test_next_pages_on_another_server_are_not_followed(self):
        """A next link to another server leaves the bundle incomplete (and nothing is fetched)."""
        bundle = json.loads(self.bundle(1, "https://elsewhere.example.org/next"))

        async def go() -> Any:
            async with httpx.AsyncClient() as client:
                return await fhir_client.next_pages(client, bundle, "http://127.0.0.1:1/fhir", None, 1.0)

        merged, complete = run(go())
        assert (1, False) == (len(merged["entry"]), complete)

    def test_allowed_servers(self):
        """Only http(s) URLs, and only under a configured prefix when there is one."""
        assert fhir_client.allowed("https://ehr.example.org/fhir", ())
        assert not fhir_client.allowed("file:///etc/passwd", ())
        assert not fhir_client.allowed("https://evil.example.org", ("https://ehr.example.org/",))


class TestJwksUrl:
    def verify(self, url: str, bearer: str) -> Any:
        async def go() -> Any:
            async with httpx.AsyncClient() as client:
                verifier = TokenVerifier([Issuer(iss=EXAMPLE_ISSUER, jwks_url=url)], client)
                return await verifier.verify(f"Bearer {bearer}", ["https://cds/x"])

        return run(go())

    def test_keys_from_a_url(self, loopback):
        """Keys are fetched from the configured URL and the token verifies."""
        server = loopback({"/jwks": lambda: (200, (CDS_HOOKS / "jwks-public.json").read_bytes())})

        assert "https://cds/x" == self.verify(f"{server.url}/jwks", token("https://cds/x"))["aud"]

    @pytest.mark.parametrize(
        "answer",
        [
            (500, b""),
            (200, b"not json"),
            (200, b'{"keys": [{"kid": "example-kid", "kty": "EC", "crv": "P-999"}, 7]}'),
        ],
    )
    def test_an_unusable_key_set_refuses_every_token(self, loopback, answer):
        """A JWKS URL that fails, or has no usable key, leaves the kid unknown: 401, not 500."""
        server = loopback({"/jwks": lambda: answer})

        with pytest.raises(AuthError, match="not in its issuer's JWK Set"):
            self.verify(f"{server.url}/jwks", token("https://cds/x"))


def test_body_limit_refuses_a_bad_content_length():
    """A Content-Length that is not a number is refused like an oversized body."""
    sent: list[dict[str, Any]] = []

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("the app must not be called")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"12x")]}
    run(BodyLimit(app, 10)(scope, receive, send))

    assert 413 == sent[0]["status"]


def test_a_worker_process_tunes_its_garbage_collector_after_start_up():
    import gc

    from ketacds.server.app import GC_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == max(before[0], GC_THRESHOLD)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
