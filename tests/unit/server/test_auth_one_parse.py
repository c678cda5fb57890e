"""A bearer token is parsed once: the checks after that parse give exactly what ``jwt.decode`` gives."""

from __future__ import annotations

import base64
import random
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


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _odd_tokens() -> dict[str, str]:
    """Tokens PyJWT reads in its own ways (padding, detached payloads, odd headers), and junk."""
    valid = _tokens()["valid"]
    head, payload, signature = valid.split(".")
    claims = _segment(b'{"iss": "x", "exp": 1, "iat": 1, "jti": "j"}')
    last = "B" if payload[-1] != "B" else "C"
    nan = _segment(b'{"exp": NaN}')
    kid_number = _segment(b'{"alg": "ES384", "kid": 5}')
    b64_false = _segment(b'{"alg": "ES384", "b64": false, "crit": ["b64"]}')
    b64_true = _segment(b'{"alg": "ES384", "b64": true}')
    utf16 = _segment('{"alg": "ES384", "kid": "k"}'.encode("utf-16-le"))
    bom = _segment(b'\xef\xbb\xbf{"alg": "ES384", "kid": "k"}')
    latin1 = _segment(b'{"alg": "ES384", "kid": "\xe9"}')
    surrogate = _segment(b'{"alg": "ES384", "kid": "\\udc80", "x": "\xed\xb2\x80"}')
    crit = _segment(b'{"alg": "ES384", "crit": ["exp"]}')
    odd = {
        "padded header": f"{head}==.{payload}.{signature}",
        "padded signature": f"{head}.{payload}.{signature}=",
        "empty signature": f"{head}.{payload}.",
        "empty header": f".{payload}.{signature}",
        "two segments": f"{head}.{payload}",
        "four segments": f"{head}.{payload}.{signature}.{signature}",
        "junk in a segment": f"{head}.{payload[:10]}!{payload[11:]}.{signature}",
        "one character too many": f"{head}.{payload}A.{signature}",
        "non-canonical last character": f"{head}.{payload[:-1]}{last}.{signature}",
        "header not an object": f"{_segment(b'[1]')}.{payload}.{signature}",
        "header not JSON": f"{_segment(b'{nope')}.{payload}.{signature}",
        "payload not an object": f"{head}.{_segment(b'5')}.{signature}",
        "payload with NaN": f"{head}.{nan}.{signature}",
        "kid a number": f"{kid_number}.{claims}.{signature}",
        "b64 false": f"{b64_false}..{signature}",
        "b64 true": f"{b64_true}.{claims}.{signature}",
        "crit": f"{crit}.{claims}.{signature}",
        "not ASCII": f"{head}.{payload}é.{signature}",
        "header in UTF-16": f"{utf16}.{claims}.{signature}",
        "header with a byte order mark": f"{bom}.{claims}.{signature}",
        "header not UTF-8": f"{latin1}.{claims}.{signature}",
        "header with a surrogate escape": f"{surrogate}.{claims}.{signature}",
        "lone surrogate": f"{head}.{payload}\udc80.{signature}",
        "nothing": "",
    }
    return {**_tokens(), **odd}


def _any_outcome(call: Any) -> Any:
    try:
        return ("claims", call())
    except Exception as error:  # PyJWT lets a UnicodeEncodeError through: so does the fast parse
        return (type(error).__name__, str(error))


@pytest.mark.parametrize("name", sorted(_odd_tokens()))
def test_the_fast_parse_is_pyjwts(name):
    token = _odd_tokens()[name]
    expected = _any_outcome(lambda: jwt.decode_complete(token, options={"verify_signature": False}))
    assert _any_outcome(lambda: auth._unverified(token)) == expected


def test_random_changes_to_a_token_are_read_as_pyjwt_reads_them():
    rng = random.Random(18)
    valid = _tokens()["valid"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
    for _ in range(3000):
        chars = list(valid)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(chars))
            action = rng.random()
            if action < 0.5:
                chars[where] = rng.choice(alphabet)
            elif action < 0.75:
                del chars[where]
            else:
                chars.insert(where, rng.choice(alphabet))
        token = "".join(chars)
        expected = _outcome(lambda t=token: jwt.decode_complete(t, options={"verify_signature": False}))
        assert _outcome(lambda t=token: auth._unverified(t)) == expected, token


def test_this_pyjwt_is_read_fast():
    assert auth._FAST_PARSE
