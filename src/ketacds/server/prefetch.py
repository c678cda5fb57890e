"""A hook call's FHIR resources: what the client prefetched, and what the service fetches itself.

The prefetch templates come from :func:`ketacds.adapters.cds_hooks.prefetch_templates`
(discovery publishes the same ones). For each template, :func:`prefetched` takes the
client's prefetched value when there is one (following a Bundle's ``next`` pages on an
allowed FHIR server, or noting the Bundle as incomplete when it cannot), and fetches
the rest from ``fhirServer``. Anything needed that can be neither read nor fetched is
answered 412: the service never assesses a record it could not read whole or say is
incomplete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import HTTPException

from ketacds.adapters.cds_hooks import prefetch_templates, render_template
from ketacds.errors import FetchError
from ketacds.models.quality import DataQualityIssue
from ketacds.server.fhir_client import allowed, fetch, next_pages
from ketacds.server.models import HookRequest
from ketacds.server.service import Service

__all__ = ["prefetched"]


async def prefetched(
    service: Service, body: HookRequest, context: Mapping[str, Any]
) -> tuple[list[Any], list[DataQualityIssue]]:
    """The prefetched resources, with whatever was missing fetched from the FHIR server.

    Returns:
        The resources (prefetched values first, in template order, then those of keys
        no template asks for, by key, then the fetched ones, by key) and an
        ``incomplete-prefetch`` issue for each Bundle that could be read only in part.

    Raises:
        HTTPException: 412 when something needed is neither prefetched nor fetchable.
    """
    _, mapping, _, http = service.ready()
    templates = prefetch_templates(mapping.observation_codes)
    given = body.prefetch or {}
    token = body.fhirAuthorization.access_token if body.fhirAuthorization else None
    server = body.fhirServer
    if server is not None and not allowed(server, service.settings.fhir_servers):
        server = None
        refused = True
    else:
        refused = False
    resources: list[Any] = []
    issues: list[DataQualityIssue] = []
    missing: dict[str, str] = {}
    for key, template in templates.items():
        if key in given:
            value = given[key]
            if value is not None:  # (None: the client found nothing for this query)
                _check_type(key, template, value, issues)
                resources.append(await _given(service, http, key, value, server, token, issues))
            continue
        query = render_template(template, context, lambda text: quote(text, safe=""))
        if query is None:  # pragma: no cover - the context was checked to have patientId
            raise HTTPException(412, f"prefetch {key!r} is missing and its template cannot be filled")
        missing[key] = query
    # A key no template asks for is read all the same: nothing given is left unseen.
    for key in sorted(set(given) - set(templates)):
        if given[key] is not None:
            resources.append(await _given(service, http, key, given[key], server, token, issues))
    if missing:
        if server is None:
            why = "fhirServer is not one this service may call" if refused else "no fhirServer was given"
            raise HTTPException(412, f"prefetch {', '.join(sorted(missing))} missing and {why}")
        resources += await _fetch_missing(service, http, missing, server, token)
    return resources, issues


async def _given(
    service: Service,
    http: httpx.AsyncClient,
    key: str,
    value: Any,
    server: str | None,
    token: str | None,
    issues: list[DataQualityIssue],
) -> Any:
    """One prefetched value, its next pages read when they can be (else an issue, and the value as read).

    A Bundle reported incomplete here loses its ``link`` and ``total``, so the reader
    does not report the same missing part again (``incomplete-bundle``).
    """
    if server is not None and _is_bundle(value):
        value, complete = await _read_prefetched(service, http, key, value, server, token)
    else:  # (taken as given: nothing to await)
        complete = _complete(value)
    if complete:
        return value
    issues.append(_incomplete(key))
    return {name: part for name, part in value.items() if name not in ("link", "total")}


async def _read_prefetched(
    service: Service, http: httpx.AsyncClient, key: str, value: Any, server: str, token: str | None
) -> tuple[Any, bool]:
    """A prefetched Bundle with its next pages read from ``server`` (allowed), and whether it is complete."""
    try:
        return await next_pages(http, value, server, token, service.settings.fhir_timeout)
    except FetchError as error:
        raise HTTPException(412, f"prefetch {key!r}: could not read its next page ({error})") from None


def _check_type(key: str, template: str, value: Any, issues: list[DataQualityIssue]) -> None:
    """An error when a prefetched value is a resource of another type than its template asks for.

    A search's answer is a Bundle, a read's the resource read (or a Bundle holding it);
    an OperationOutcome is the client saying it could not prefetch (the reader reports
    it). A Patient given as ``medications`` is read as what it is, but the medications
    were never given: never taken as "none found". (A value that is no resource at all,
    such as ``{}``, is reported by the reader.)
    """
    kind = value.get("resourceType") if isinstance(value, Mapping) else None
    if not isinstance(kind, str) or kind in ("Bundle", "OperationOutcome"):
        return
    path = template.split("?", 1)[0]
    wanted = path.split("/", 1)[0]
    if "?" not in template and "/" in path and kind == wanted:
        return
    asked = f"a Bundle of {wanted} (a search)" if "?" in template else f"a {wanted}"
    issues.append(
        DataQualityIssue(
            severity="error",
            code="invalid-resource",
            message=f"Prefetch {key!r} holds a {kind[:40]}, not {asked}: what it should hold was not given, "
            "and could change the answer.",
        )
    )


def _is_bundle(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("resourceType") == "Bundle"


def _complete(value: Any) -> bool:
    """Whether a prefetched value taken as given is complete: not a Bundle with a ``next`` link."""
    if not _is_bundle(value):
        return True
    links = value.get("link")
    return not any(
        isinstance(link, Mapping) and link.get("relation") == "next"
        for link in (links if isinstance(links, list) else [])
    )


def _incomplete(key: str) -> DataQualityIssue:
    """The data-quality issue of a prefetched Bundle read only in part."""
    return DataQualityIssue(
        severity="error",
        code="incomplete-prefetch",
        message=f"Only part of the prefetched {key} could be read (more pages on another server).",
    )


async def _fetch_missing(
    service: Service, http: httpx.AsyncClient, missing: Mapping[str, str], server: str, token: str | None
) -> list[Any]:
    """The resources of the ``missing`` queries (key → query), fetched at once, in key order."""

    async def one(key: str, query: str) -> Any:
        try:
            return await fetch(http, server, query, token, service.settings.fhir_timeout)
        except FetchError as error:
            raise HTTPException(412, f"could not fetch {key} from the FHIR server: {error}") from None

    return list(await asyncio.gather(*(one(k, q) for k, q in sorted(missing.items()))))
