"""A bearer token is parsed once: the checks after that parse give exactly what ``jwt.decode`` gives."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ketacds.server import auth
from servers import EXAMPLE_ISSUER, EXAMPLE_KID, example_private_key

AUD = "http://127.0.0.1:9/cds-services/ketacds-patient-view"
OPTIONS: Any = {"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True}


def _token(claims: dict[str, Any], key: Any = None) -> str:
    return jwt.encode(
        claims, key or example_private_key().key, algorithm="ES384", headers={"kid": EXAMPLE_KID}
    )


def _tokens() -> dict[str, str]:
    now = int(time.time())
    good = {"iss": EXAMPLE_ISSUER, "aud": AUD, "exp": now + 300, "iat": now, "jti": "j"}
    other_key = ec.generate_private_key(ec.SECP384R1())
    cases: dict[str, dict[str, Any]] = {
        "valid": good,
        "expired": {**good, "exp": now - 120, "iat": now - 400},
        "issued in the future": {**good, "iat": now + 600},
        "not before later": {**good, "nbf": now + 600},
        "nbf not a number": {**good, "nbf": "soon"},
        "exp not a number": {**good, "exp": "later"},
        "iat not a number": {**good, "iat": "now"},
        "another audience": {**good, "aud": "http://elsewhere/"},
        "audience list": {**good, "aud": [AUD, "http://elsewhere/"]},
        "audience of numbers": {**good, "aud": [1]},
        "another issuer": {**good, "iss": "https://other.example/"},
        "subject not text": {**good, "sub": 5},
        "jti not text": {**good, "jti": 5},
        **{f"no {claim}": {k: v for k, v in good.items() if k != claim} for claim in good},
        "null jti": {**good, "jti": None},
    }
    tokens = {name: _token(claims) for name, claims in cases.items()}
    tokens["signed by another key"] = _token(good, other_key)
    head, payload, signature = tokens["valid"].split(".")
    tokens["signature cut short"] = f"{head}.{payload}.{signature[:40]}"
    tokens["payload changed"] = f"{head}.{tokens['expired'].split('.')[1]}.{signature}"
    return tokens


def _outcome(call: Any) -> Any:
    try:
        return ("claims", call())
    except jwt.PyJWTError as error:
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("name", sorted(_tokens()))
def test_the_checks_after_one_parse_are_jwt_decode(name):
    token = _tokens()[name]
    key = example_private_key().key.public_key()
    parsed = jwt.decode_complete(token, options={"verify_signature": False})
    issuer = parsed["payload"].get("iss") if isinstance(parsed["payload"].get("iss"), str) else EXAMPLE_ISSUER
    expected = _outcome(
        lambda: jwt.decode(
            token, key=key, algorithms=["ES384"], audience=[AUD], issuer=issuer, leeway=60, options=OPTIONS
        )
    )
    assert _outcome(lambda: auth._verified(token, parsed, key, "ES384", issuer, [AUD], 60)) == expected


def test_this_pyjwt_is_checked_in_one_parse():
    assert auth._ONE_PARSE
