"""How one CDS Hooks service is configured: plain data, passed to every worker process.

``ketacds serve`` builds a :class:`ServiceSettings` from its options and hands it to
each uvicorn worker as JSON in the ``KETACDS_SERVE_SETTINGS`` environment variable
(workers are separate processes: each builds its own engine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ketacds.engine.backend import BACKENDS
from ketacds.errors import InputError
from ketacds.models.load import read_document
from ketacds.vocabulary import ESKETAMINE_NASAL, ROUTES

__all__ = ["ENVIRONMENT_VARIABLE", "Issuer", "ServiceSettings", "load_issuers"]

ENVIRONMENT_VARIABLE = "KETACDS_SERVE_SETTINGS"


@attrs.frozen(kw_only=True)
class Issuer:
    """A CDS client trusted to call the service: its ``iss`` and where its public keys are.

    Exactly one of ``jwks_url`` (fetched and cached; a token's ``jku`` must equal it)
    and ``jwks_file`` (keys pinned locally; ``jku`` is ignored) is given.
    """

    iss: str
    jwks_url: str | None = None
    jwks_file: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(f"issuer {self.iss!r}: give exactly one of jwks_url and jwks_file")


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _issuers(value: Any) -> tuple[Issuer, ...]:
    return tuple(item if isinstance(item, Issuer) else Issuer(**item) for item in value)


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """Everything a worker needs to serve.

    Attributes:
        public_url: the base URL clients call (``https://cds.example.org``); a token's
            ``aud`` must equal ``{public_url}/cds-services/{id}``.
        issuers: the CDS clients trusted to call (JWT ``iss`` allow-list).
        auth: ``False`` only for local use (``--insecure-no-auth``): no token is checked.
        jurisdiction: where the service advises (a jurisdiction of the ruleset).
        patient_view_routes: the planned treatments a ``patient-view`` assesses.
        database: the SQLite file for feedback, issued cards and seen token ids.
        max_body_bytes: larger requests get 413 before they are read.
        fhir_servers: URL prefixes the service may fetch from; empty allows any.
        fhir_timeout: seconds for each FHIR request.
        rules_dir: a ruleset directory (default: the bundled rules).
        rules_docs_url: base URL of the rendered rule docs (default ``{public_url}/docs/rules``).
        rules_docs_dir: where the rendered docs are, to serve them at ``/docs/rules``.
        leeway_seconds: clock skew allowed on ``exp`` and ``iat``.
        max_token_lifetime: longest ``exp - iat`` accepted, in seconds.
        log_level: of the service's own log (``ketacds.server``), which never holds patient data.
        backend: the engine backend (``Engine(backend=...)``): ``durable`` (the engine of
            record), ``compiled`` or ``reference``.
    """

    public_url: str
    issuers: tuple[Issuer, ...] = attrs.field(default=(), converter=_issuers)
    auth: bool = True
    jurisdiction: str = "US"
    patient_view_routes: tuple[str, ...] = attrs.field(default=(ESKETAMINE_NASAL,), converter=_strings)
    database: str = "ketacds-cds.sqlite3"
    max_body_bytes: int = 5_000_000
    fhir_servers: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    fhir_timeout: float = 10.0
    rules_dir: str | None = None
    rules_docs_url: str | None = None
    rules_docs_dir: str | None = None
    leeway_seconds: int = 60
    max_token_lifetime: int = 3600
    log_level: str = "info"
    backend: str = "durable"

    def __attrs_post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be an http(s) URL, not {self.public_url!r}")
        for route in self.patient_view_routes:
            if route not in ROUTES:
                raise ValueError(f"unknown route {route!r}; known: {', '.join(ROUTES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown engine backend {self.backend!r}; known: {', '.join(sorted(BACKENDS))}")
        if self.auth and not self.issuers:
            raise ValueError(
                "no trusted issuers: give an issuers file (--issuers), or --insecure-no-auth for local use"
            )

    @property
    def base_url(self) -> str:
        """``public_url`` without a trailing slash."""
        return self.public_url.rstrip("/")

    @property
    def docs_url(self) -> str:
        """Where the cards link the rendered rule docs."""
        return (self.rules_docs_url or f"{self.base_url}/docs/rules").rstrip("/")

    def to_json(self) -> str:
        """This configuration as JSON (for the worker processes)."""
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        """Read :meth:`to_json` output."""
        data = json.loads(text)
        data["issuers"] = [Issuer(**item) for item in data.get("issuers", [])]
        return cls(**data)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the settings ``ketacds serve`` put in ``KETACDS_SERVE_SETTINGS``."""
        environ = os.environ if environ is None else environ
        text = environ.get(ENVIRONMENT_VARIABLE)
        if not text:
            raise RuntimeError(f"{ENVIRONMENT_VARIABLE} is not set; start the service with `ketacds serve`")
        return cls.from_json(text)


def load_issuers(path: Path | str) -> tuple[Issuer, ...]:
    """Read the trusted issuers from a YAML or JSON file.

    The file holds ``issuers: [{iss: ..., jwks_url: ...} | {iss: ..., jwks_file: ...}]``;
    a relative ``jwks_file`` is relative to the issuers file.

    Raises:
        InputError: the file cannot be read or has the wrong shape.
    """
    path = Path(path)
    data = read_document(path)  # YAML, or JSON (.json): duplicate keys, limits and encoding checked
    items = data.get("issuers") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}: issuers", "expected a non-empty list of {iss, jwks_url | jwks_file}")
    issuers = []
    for index, item in enumerate(items):
        where = f"{path}: issuers[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("iss"), str):
            raise InputError(where, "needs iss (text) and one of jwks_url, jwks_file")
        unknown = set(item) - {"iss", "jwks_url", "jwks_file"}
        if unknown:
            raise InputError(f"{where}.{sorted(unknown)[0]}", "unknown field")
        jwks_file = item.get("jwks_file")
        if isinstance(jwks_file, str) and not Path(jwks_file).is_absolute():
            jwks_file = str((path.parent / jwks_file).resolve())
        if isinstance(jwks_file, str):
            # Read now, so that a missing or broken key file is one line at the command
            # line, not a traceback when the service starts.
            keys = read_document(jwks_file)
            if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
                raise InputError(f"{where}.jwks_file", f"{jwks_file} is not a JWK Set ({{keys: [...]}})")
        try:
            issuers.append(Issuer(iss=item["iss"], jwks_url=item.get("jwks_url"), jwks_file=jwks_file))
        except ValueError as error:
            raise InputError(where, str(error)) from None
    return tuple(issuers)
