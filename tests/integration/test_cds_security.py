"""JWT bearer authentication, against a real server: the CDS Hooks spec's example token and key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest

from servers import EXAMPLE_ISSUER, EXAMPLE_KID, RSA_ISSUER, URL_ISSUER, token
from support import CDS_HOOKS

SERVICE = "ketacds-patient-view"


def body() -> dict[str, object]:
    """A well-formed call that needs no FHIR: everything prefetched, nothing found (null)."""
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p-1"},
        "prefetch": dict.fromkeys(
            ("patient", "conditions", "medications", "medicationStatements", "observations", "allergies")
        ),
    }


def call(client: httpx.Client, bearer: str | None, *, scheme: str = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {bearer}"} if bearer is not None else {}
    return client.post(f"/cds-services/{SERVICE}", json=body(), headers=headers)


def refused(response: httpx.Response) -> str:
    assert 401 == response.status_code
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    return str(response.json()["error"])


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_spec_example_token_is_rejected_as_expired(client):
    """The specification's ES384 example token verifies against its keys but expired in 2015."""
    example = (CDS_HOOKS / "jwt-example-token.txt").read_text().strip()

    assert "the token has expired" == refused(call(client, example))


def test_fresh_token_signed_with_the_example_key_is_accepted(client, service):
    """A fresh ES384 token signed with the example private key, aud = the service URL: 200."""
    response = call(client, token(service.endpoint(SERVICE)))

    assert 200 == response.status_code


def test_alg_none_is_refused(client, service):
    """An unsigned token (alg none) is refused before any key is looked at."""
    claims = {
        "iss": EXAMPLE_ISSUER,
        "aud": service.endpoint(SERVICE),
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "jti": "n1",
    }
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': EXAMPLE_KID})}.{_b64(claims)}."

    assert "token algorithm 'none' is refused; only ES384, RS384 are accepted" == refused(
        call(client, unsigned)
    )


def test_hs256_is_refused_even_with_the_public_key_as_secret(client, service):
    """HS256 (here the classic key-confusion attack: the public JWK as HMAC secret) is refused."""
    secret = (CDS_HOOKS / "jwks-public.json").read_bytes()
    claims = {
        "iss": EXAMPLE_ISSUER,
        "aud": service.endpoint(SERVICE),
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
    }
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': EXAMPLE_KID})}.{_b64(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    assert "token algorithm 'HS256' is refused; only ES384, RS384 are accepted" == refused(
        call(client, forged)
    )


def test_wrong_audience_is_refused(client, service):
    """A token for another service (aud) is refused."""
    other = token("https://cds.example.org/cds-services/some-service")

    assert refused(call(client, other)).startswith("the token's aud must be this endpoint's URL")


def test_a_token_for_another_ketacds_service_is_refused(client, service):
    """aud must name the endpoint called: an order-sign token cannot call patient-view."""
    assert refused(call(client, token(service.endpoint("ketacds-order-sign")))).startswith("the token's aud")


def test_replayed_jti_is_refused(client, service):
    """The same token twice: the second use is refused (jti replay)."""
    once = token(service.endpoint(SERVICE))

    assert 200 == call(client, once).status_code
    assert "the token was already used (jti replayed)" == refused(call(client, once))


@pytest.mark.parametrize("claim", ["exp", "iat", "jti"])
def test_required_claims(client, service, claim):
    """exp, iat and jti are required."""
    assert f"the token has no {claim} claim" == refused(
        call(client, token(service.endpoint(SERVICE), drop=(claim,)))
    )


def test_untrusted_issuer_is_refused(client, service):
    """A token from an issuer not on the allow-list is refused, even with a good signature."""
    assert "the token's issuer (iss) is not trusted by this service" == refused(
        call(client, token(service.endpoint(SERVICE), iss="https://evil.example.org"))
    )


def test_token_issued_in_the_future_is_refused(client, service):
    """iat an hour ahead (beyond the clock-skew leeway) is refused."""
    assert "the token was issued in the future (iat)" == refused(
        call(client, token(service.endpoint(SERVICE), now=time.time() + 3600))
    )


def test_long_lived_token_is_refused(client, service):
    """A token valid for a day is refused (replay protection needs short lives)."""
    assert "the token lives longer than 3600 seconds (exp - iat)" == refused(
        call(client, token(service.endpoint(SERVICE), lifetime=86400))
    )


def test_unknown_kid_is_refused(client, service):
    """A key id not in the issuer's JWK Set is refused."""
    assert "the token's key (kid) is not in its issuer's JWK Set" == refused(
        call(client, token(service.endpoint(SERVICE), headers={"kid": "other-kid"}))
    )


@pytest.mark.parametrize(
    ("header", "scheme", "message"),
    [
        (None, "Bearer", "an Authorization: Bearer token is required"),
        ("abc", "Basic", "the Authorization header must be 'Bearer <JWT>'"),
        ("not.a.jwt", "Bearer", "the bearer token is not a well-formed JWT"),
    ],
)
def test_missing_or_malformed_authorization(client, header, scheme, message):
    """No header, another scheme, or garbage: 401 with the reason."""
    assert message == refused(call(client, header, scheme=scheme))


def test_keys_fetched_from_the_issuers_jwks_url(client, service):
    """An issuer configured by JWKS URL: its keys are fetched, and the token is accepted."""
    response = call(client, token(service.endpoint(SERVICE), iss=URL_ISSUER))

    assert 200 == response.status_code


def test_jku_other_than_the_configured_url_is_refused(client, service):
    """A token pointing at another key URL (jku) is refused: keys come only from configuration."""
    tampered = token(
        service.endpoint(SERVICE), iss=URL_ISSUER, headers={"jku": "https://evil.example.org/jwks"}
    )

    assert "the token's jku is not the JWK Set URL configured for its issuer" == refused(
        call(client, tampered)
    )


def test_rs384_is_accepted_and_rs256_refused(client, service):
    """RS384 with a trusted RSA key works; the same key with RS256 is refused."""
    now = int(time.time())

    def signed(alg: str) -> str:
        claims = {
            "iss": RSA_ISSUER,
            "aud": service.endpoint(SERVICE),
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, service.rsa_key, algorithm=alg, headers={"kid": "rsa-1"})

    assert 200 == call(client, signed("RS384")).status_code
    assert "token algorithm 'RS256' is refused; only ES384, RS384 are accepted" == refused(
        call(client, signed("RS256"))
    )


def test_es384_header_with_an_rsa_key_is_refused(client, service):
    """A kid naming an RSA key under alg ES384 is refused (key type must match the algorithm)."""
    forged = token(service.endpoint(SERVICE), iss=RSA_ISSUER, headers={"kid": "rsa-1"})

    assert "the key (kid) is not a public key for ES384" == refused(call(client, forged))


def test_feedback_needs_a_token_too(client, service):
    """The feedback endpoint refuses calls without a token."""
    body = json.loads((CDS_HOOKS / "feedback-overridden.json").read_text())

    assert 401 == client.post("/cds-services/ketacds-order-sign/feedback", json=body).status_code
    assert 401 == client.get("/cds-services/ketacds-order-sign/feedback").status_code


def test_discovery_and_openapi_are_public(client):
    """Discovery and the OpenAPI document need no token."""
    assert 200 == client.get("/cds-services").status_code
    assert 200 == client.get("/openapi.json").status_code
