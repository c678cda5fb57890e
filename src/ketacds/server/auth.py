"""JWT bearer authentication of CDS clients, as the CDS Hooks specification asks.

A request carries ``Authorization: Bearer <JWT>`` signed by the CDS client. The
service accepts it only when every check below holds; otherwise it answers 401 with
the reason (and never a hint of patient data):

* the header names ``alg`` ES384 or RS384 (so ``none`` and every HMAC algorithm are
  refused before any key is looked at) and a ``kid``;
* ``iss`` is on the allow-list, and the key ``kid`` is in that issuer's JWK Set,
  read from a pinned file or fetched from its ``jwks_url`` (a ``jku`` header must
  then equal that URL: keys are never fetched from where a token says);
* the key is of the algorithm's type (EC P-384 for ES384, RSA for RS384) and the
  signature verifies;
* ``aud`` equals the URL of the endpoint called; ``exp``, ``iat`` and ``jti`` are
  present, the token has not expired, was not issued in the future, and lives no
  longer than the configured maximum;
* the ``jti`` was not seen before from that issuer (checked by the caller against the
  durable store, so a replay to another worker process is refused too).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ketacds.errors import AuthError
from ketacds.server.settings import Issuer

__all__ = ["ALGORITHMS", "AuthError", "Claims", "TokenVerifier"]

#: The only signature algorithms accepted.
ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")

Claims = dict[str, Any]

_JWKS_TTL = 300.0
_JWKS_MIN_REFRESH = 30.0


class _KeySource:
    """One issuer's JWK Set: pinned from a file, or fetched from a URL and cached."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.keys: dict[str, _Key] = {}
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()
        if issuer.jwks_file is not None:
            self.keys = _parse_jwks(Path(issuer.jwks_file).read_text(encoding="utf-8"))

    async def key(self, kid: str, client: httpx.AsyncClient) -> _Key | None:
        if self.issuer.jwks_url is None:
            return self.keys.get(kid)
        age = time.monotonic() - self.fetched_at
        if kid in self.keys and age < _JWKS_TTL:
            return self.keys[kid]
        if age >= _JWKS_MIN_REFRESH or not self.fetched_at:
            async with self.lock:
                if time.monotonic() - self.fetched_at >= _JWKS_MIN_REFRESH or not self.fetched_at:
                    await self._fetch(client)
        return self.keys.get(kid)

    async def _fetch(self, client: httpx.AsyncClient) -> None:
        assert self.issuer.jwks_url is not None
        try:
            response = await client.get(self.issuer.jwks_url, timeout=5.0)
            response.raise_for_status()
            self.keys = _parse_jwks(response.text)
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            pass  # keep the keys we had; an unknown kid is then refused
        self.fetched_at = time.monotonic()


class _Key:
    """A public key from a JWK Set, with the algorithm its JWK declares (if any)."""

    def __init__(self, jwk: jwt.PyJWK, declared_alg: str | None) -> None:
        self.jwk = jwk
        self.declared_alg = declared_alg


def _parse_jwks(text: str) -> dict[str, _Key]:
    data = json.loads(text)
    keys: dict[str, _Key] = {}
    for item in data.get("keys", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or "kid" not in item or item.get("use", "sig") != "sig":
            continue
        try:
            keys[str(item["kid"])] = _Key(jwt.PyJWK(item), item.get("alg"))
        except jwt.PyJWTError:
            continue  # a key type or curve PyJWT cannot use is skipped, never guessed at
    return keys


class TokenVerifier:
    """Checks bearer tokens against the trusted issuers.

    Args:
        issuers: the allow-list.
        client: for fetching JWK Sets from ``jwks_url``.
        leeway_seconds: clock skew allowed on ``exp`` and ``iat``.
        max_lifetime: longest ``exp - iat`` accepted, in seconds.
    """

    def __init__(
        self,
        issuers: Sequence[Issuer],
        client: httpx.AsyncClient,
        *,
        leeway_seconds: int = 60,
        max_lifetime: int = 3600,
    ) -> None:
        self.sources = {issuer.iss: _KeySource(issuer) for issuer in issuers}
        self.client = client
        self.leeway = leeway_seconds
        self.max_lifetime = max_lifetime

    async def verify(self, authorization: str | None, audiences: Sequence[str]) -> Claims:
        """Return the claims of a valid token for one of ``audiences``.

        Raises:
            AuthError: the token is missing or fails a check.
        """
        if not authorization:
            raise AuthError("an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <JWT>'")
        token = token.strip()
        try:  # the header and claims in one parse (the signature is checked below, in _decode)
            parsed = _unverified(token)
            header, unverified = parsed["header"], parsed["payload"]
        except jwt.PyJWTError:
            raise AuthError("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError(f"token algorithm {alg!r} is refused; only {', '.join(ALGORITHMS)} are accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the token header has no kid")
        iss = unverified.get("iss")
        source = self.sources.get(iss) if isinstance(iss, str) else None
        if source is None or not isinstance(iss, str):
            raise AuthError("the token's issuer (iss) is not trusted by this service")
        jku = header.get("jku")
        if source.issuer.jwks_url is not None and jku is not None and jku != source.issuer.jwks_url:
            raise AuthError("the token's jku is not the JWK Set URL configured for its issuer")
        key = await source.key(kid, self.client)
        if key is None:
            raise AuthError("the token's key (kid) is not in its issuer's JWK Set")
        _check_key_type(key, alg)
        claims = self._decode(token, parsed, key, alg, iss, audiences)
        if claims["exp"] - claims["iat"] > self.max_lifetime:
            raise AuthError(f"the token lives longer than {self.max_lifetime} seconds (exp - iat)")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthError("the token's jti must be a non-empty string")
        return claims

    def _decode(
        self, token: str, parsed: dict[str, Any], key: _Key, alg: str, iss: str, audiences: Sequence[str]
    ) -> Claims:
        try:
            claims = _verified(token, parsed, key.jwk.key, alg, iss, list(audiences), self.leeway)
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"the token's aud must be this endpoint's URL ({audiences[0]})") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"the token has no {error.claim} claim") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token was issued in the future (iat)") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise AuthError(f"the token is not valid: {type(error).__name__}") from None
        if not isinstance(claims.get("aud"), str):
            # RFC 7519 allows a list; CDS Hooks gives aud as the one service URL. A token
            # naming several audiences could be replayed at each of them: refused.
            raise AuthError(f"the token's aud must be one URL, this endpoint's ({audiences[0]}), not a list")
        if not isinstance(claims.get("exp"), int | float) or not isinstance(claims.get("iat"), int | float):
            raise AuthError("the token's exp and iat must be numbers")
        return claims


#: The checks of :func:`jwt.decode` on a token's claims (besides ``aud`` and ``iss``, given per call).
_CLAIM_OPTIONS: Any = {"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True}
_JWS = jwt.PyJWS()
_JWT = jwt.PyJWT(options=_CLAIM_OPTIONS)
#: Whether this PyJWT has the two steps of :func:`jwt.decode` that :func:`_verified` calls
#: (tests/unit/server/test_auth_one_parse.py checks they give what it gives); without
#: them the token is decoded a second time, by :func:`jwt.decode`.
_ONE_PARSE = callable(getattr(_JWS, "_verify_signature", None)) and callable(
    getattr(_JWT, "_validate_claims", None)
)


#: :func:`jwt.decode_complete`'s options for reading a token before its key is known.
_UNVERIFIED: Any = {"verify_signature": False}
_PLAIN_JWT = jwt.PyJWT()
#: Whether this PyJWT has the steps :func:`_fast_unverified` repeats (with :data:`_ONE_PARSE`'s).
_FAST_PARSE = (
    _ONE_PARSE
    and callable(getattr(_PLAIN_JWT, "_merge_options", None))
    and callable(getattr(_PLAIN_JWT, "_validate_claims", None))
)
#: The claim checks :func:`jwt.decode_complete` makes with :data:`_UNVERIFIED` (none, in the versions tested).
_UNVERIFIED_CLAIMS: Any = _PLAIN_JWT._merge_options(_UNVERIFIED) if _FAST_PARSE else None
#: Whether those checks check nothing (no claim required, no ``verify_*`` on): then they are skipped.
_UNVERIFIED_CHECKS_NOTHING = bool(
    _FAST_PARSE
    and not _UNVERIFIED_CLAIMS.get("require")
    and not any(value for name, value in _UNVERIFIED_CLAIMS.items() if name.startswith("verify_"))
)
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _unverified(token: str) -> dict[str, Any]:
    """``jwt.decode_complete(token, options={"verify_signature": False})``: header, payload, signature.

    A plain token (three unpadded base64url segments of a JSON header with no ``b64``
    or ``crit``, a JSON payload and a signature) is read by :func:`_fast_unverified`;
    every other token, and every token it refuses, by PyJWT itself, so it raises exactly
    what PyJWT raises.

    Raises:
        jwt.PyJWTError: what :func:`jwt.decode_complete` raises for this token.
    """
    parsed = _fast_unverified(token) if _FAST_PARSE else None
    if parsed is None:
        parsed = jwt.decode_complete(token, options=_UNVERIFIED)
    return parsed


def _fast_unverified(token: str) -> dict[str, Any] | None:
    """What :func:`jwt.decode_complete` gives a plain token without verifying it, or ``None``.

    PyJWT's steps for such a token, each checked the same way, only at C speed (PyJWT
    tests each base64 character in a Python loop: ≈ 30 µs of a request). ``None``
    whenever a step would not simply succeed: PyJWT then reads the token itself.
    """
    try:
        parts = token.encode("utf-8").split(b".")
    except UnicodeEncodeError:
        return None
    if len(parts) != 3:
        return None
    header_data, payload_data, signature = (_segment(part) for part in parts)
    if header_data is None or payload_data is None or signature is None:
        return None
    header = _json_object(header_data)
    payload = _json_object(payload_data)
    if header is None or payload is None:
        return None
    if "b64" in header or "crit" in header or not isinstance(header.get("kid", ""), str):
        return None  # PyJWT's checks of detached payloads, critical and kid headers: its own to make
    if not _UNVERIFIED_CHECKS_NOTHING:
        try:
            _PLAIN_JWT._validate_claims(payload, _UNVERIFIED_CLAIMS)
        except jwt.PyJWTError:
            return None
    return {"payload": payload, "header": header, "signature": signature}


def _json_object(data: bytes) -> dict[str, Any] | None:
    """``json.loads(data)`` when it is a JSON object in UTF-8, else ``None``.

    Bytes starting ``{`` and then a non-zero byte are UTF-8 to :func:`json.loads`
    (``json.detect_encoding``), which it decodes with ``surrogatepass``: decoded so here.
    """
    if data[:1] != b"{" or data[1:2] == b"\x00":
        return None
    try:
        value = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return None
    return value if isinstance(value, dict) else None


def _segment(segment: bytes) -> bytes | None:
    """A non-empty, unpadded, canonical base64url segment decoded (as PyJWT decodes it), else ``None``."""
    if not segment or segment.translate(None, _BASE64URL) or len(segment) % 4 == 1:
        return None
    try:
        decoded = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except ValueError:  # pragma: no cover - base64url characters of a possible length always decode
        return None
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == segment else None


def _verified(
    token: str, parsed: dict[str, Any], key: Any, alg: str, iss: str, audiences: list[str], leeway: int
) -> Claims:
    """The claims of ``token`` once its signature and claims are checked, exactly as :func:`jwt.decode` does.

    ``parsed`` is the token as :func:`jwt.decode_complete` read it without verifying: the
    signature is checked over the token's own first two segments and the claims already
    read are checked, in :func:`jwt.decode`'s order and with its errors, without decoding
    the token a second time (≈ 30 µs of a request).

    Raises:
        jwt.PyJWTError: what :func:`jwt.decode` raises for this token.
    """
    if not _ONE_PARSE:  # pragma: no cover - the PyJWT versions tested have both steps
        claims: Claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audiences,
            issuer=iss,
            leeway=leeway,
            options=_CLAIM_OPTIONS,
        )
        return claims
    signing_input = token.encode("utf-8").rsplit(b".", 1)[0]
    # jwt.decode's own steps (see _ONE_PARSE); PyJWS's default options are those it passes.
    _JWS._verify_signature(signing_input, parsed["header"], parsed["signature"], key, [alg])
    payload: Claims = parsed["payload"]
    _JWT._validate_claims(payload, _JWT.options, audience=audiences, issuer=iss, leeway=leeway)
    return payload


def _check_key_type(key: _Key, alg: str) -> None:
    material: Any = key.jwk.key
    if alg == "ES384":
        ok = isinstance(material, ec.EllipticCurvePublicKey) and material.curve.name == "secp384r1"
    else:
        ok = isinstance(material, rsa.RSAPublicKey)
    if not ok or (key.declared_alg is not None and key.declared_alg != alg):
        raise AuthError(f"the key (kid) is not a public key for {alg}")
