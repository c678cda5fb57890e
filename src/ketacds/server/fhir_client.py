"""Fetching what the CDS client did not prefetch from its FHIR server (httpx, async).

Bounded in every direction: only servers the settings allow, a timeout per request,
a size limit per response, and a page limit when following ``next`` links (only on
the same server). Any failure is a :class:`FetchError`, which the service answers
with 412: it never assesses on a record it could not fetch. An answer is read as a
request body is (:func:`ketacds.server.codec.loads`): an object naming a key twice is
such a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ketacds.errors import FetchError
from ketacds.server.codec import DuplicateKeyError, loads

__all__ = ["MAX_PAGES", "MAX_RESPONSE_BYTES", "FetchError", "allowed", "fetch", "next_pages"]

MAX_PAGES = 20
MAX_RESPONSE_BYTES = 20_000_000


def allowed(server: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the service may fetch from ``server`` (any http(s) URL when no prefix is configured)."""
    if not server.startswith(("http://", "https://")):
        return False
    return not prefixes or any(server.startswith(prefix) for prefix in prefixes)


def _same_server(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc) and a.path.startswith(b.path.rstrip("/"))


async def _get(client: httpx.AsyncClient, url: str, token: str | None, timeout: float) -> Any:
    headers = {"Accept": "application/fhir+json, application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise FetchError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
    except httpx.TimeoutException:
        raise FetchError(f"no answer within {timeout} s") from None
    except httpx.HTTPError as error:
        raise FetchError(f"request failed ({type(error).__name__})") from None
    try:
        # Read as a request body is read: an object naming a key twice is refused, never
        # read as its last value (a Condition's second "code" would hide its first).
        return loads(bytes(body))
    except DuplicateKeyError as error:
        raise FetchError(f"the answer is not valid JSON: {error.msg}") from None
    except (ValueError, RecursionError):
        raise FetchError("the answer is not JSON") from None


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


async def next_pages(
    client: httpx.AsyncClient, bundle: Any, base: str, token: str | None, timeout: float
) -> tuple[Any, bool]:
    """Follow a searchset's ``next`` links on ``base``: the merged bundle, and whether it is complete."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return bundle, True
    first = bundle.get("entry")
    if first is not None and not isinstance(first, list):
        # left as it is, for the reader to report (never its keys taken for entries)
        return bundle, _next_link(bundle) is None
    entries = list(first or [])
    page = bundle
    for _ in range(MAX_PAGES):
        url = _next_link(page)
        if url is None:
            return {**bundle, "entry": entries, "link": []}, True
        if not _same_server(url, base):
            return {**bundle, "entry": entries}, False
        page = await _get(client, url, token, timeout)
        if not isinstance(page, Mapping) or page.get("resourceType") != "Bundle":
            raise FetchError("a next page is not a Bundle")
        more = page.get("entry")
        if more is not None and not isinstance(more, list):
            raise FetchError("a next page's entry is not a list")
        entries.extend(more or [])
    return {**bundle, "entry": entries}, _next_link(page) is None


async def fetch(client: httpx.AsyncClient, base: str, query: str, token: str | None, timeout: float) -> Any:
    """GET ``{base}/{query}`` (a read or a search), following every ``next`` page of a search."""
    url = f"{base.rstrip('/')}/{query}"
    data = await _get(client, url, token, timeout)
    merged, complete = await next_pages(client, data, base, token, timeout)
    if not complete:
        raise FetchError(f"more than {MAX_PAGES} pages")
    return merged
