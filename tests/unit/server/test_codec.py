"""The service's JSON codec reads every body exactly as json.loads does (orjson only where it agrees)."""

from __future__ import annotations

import json
import math
import random
import sys
from typing import Any

import orjson
import pytest

from ketacds.server import codec

BODIES = [
    b'{"a": 1, "b": [1.5, -0.0, 1e-400, 5e-324], "c": "\\u00e9"}',
    b"123456789012345678901",
    b" -123456789012345678901 ",
    b"[1234567890123456789]",
    b'{"a": 12345678901234567890}',
    b'{"a":[1,12345678901234567890 ,2]}',
    b'{"a":"seed: 12345678901234567890 x"}',
    b'{"a": 1234567890123456789.5}',
    b'{"a": 1e400}',
    b'{"a": 1, "a": 2}',
    b"\xef\xbb\xbf{}",
]


@pytest.mark.parametrize("body", BODIES)
def test_loads_reads_what_json_loads_reads(body: bytes) -> None:
    assert repr(codec.loads(body)) == repr(json.loads(body))


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"a": 1,}', b'{"a": [1, 2'])
def test_loads_refuses_what_json_loads_refuses_with_its_error(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(body)
    with pytest.raises(json.JSONDecodeError) as raised:
        codec.loads(body)
    assert (raised.value.msg, raised.value.pos) == (expected.value.msg, expected.value.pos)


def test_nan_is_read_as_json_loads_reads_it() -> None:
    assert math.isnan(codec.loads(b'{"a": NaN}')["a"])


def test_long_integers_are_found_only_as_values() -> None:
    assert codec._long_integer(b'{"a": 12345678901234567890}')
    assert not codec._long_integer(b'{"a": "12345678901234567890"}')
    assert not codec._long_integer(b'{"a": 123456789012345678}')


def test_dumps_writes_the_same_data() -> None:
    data = {"cards": [{"summary": "é ≥ 1", "n": 2**70, "x": 1.5, "none": None}]}
    assert json.loads(codec.dumps(data)) == data


def _big(prefix: str, suffix: str, inner: str = "") -> bytes:
    """A body past the size where the prefetch object is read apart."""
    entries = ", ".join(
        f'{{"resource": {{"id": "r{i}", "value": {i}.5, "t": "x}}{{\\"q"}}}}' for i in range(300)
    )
    prefetch = f'{{"a": {{"resourceType": "Bundle", "entry": [{entries}]}}{inner}}}'
    return f"{prefix}{prefetch}{suffix}".encode()


SPLIT_BODIES = [
    _big('{"hook": "patient-view", "prefetch": ', ', "hookInstance": "x"}'),
    _big('{"hook": "patient-view", "prefetch" :\n ', "}"),
    _big('{"prefetch": ', ', "fhirAuthorization": {"access_token": "t"}, "context": {"a": {"b": 1}}}'),
    _big('{"context": {"prefetch": ', '}, "prefetch": {"b": 2}}'),
    _big('{"prefetch": ', ', "prefetch": {"b": 2}}'),
    _big('{"prefetch": {"b": 2}, "prefetch": ', "}"),
    _big('{"pre\\u0066etch": 1, "prefetch": ', "}"),
    _big('{"prefetch": ', "}", inner=', "n": 12345678901234567890'),
    _big('{"prefetch": ', "}", inner=', "n": NaN'),
    _big('{"prefetch": ', ', "x": "}"}'),
    _big('{"prefetch": ', ', "x": "a\\"}\\""}'),
    _big('[{"prefetch": ', "}]"),
    _big('{"prefetch": ', "}", inner=', "deep": ' + "[" * 1100 + "]" * 1100),
    _big('{"prefetch": ', "}", inner=', "deep": ' + "[" * 1020 + "]" * 1020),
    _big('{"hook": "prefetch", "prefetch": ', ', "x": 1}'),
    _big('{"prefetch": ', ", }"),
    _big('{"prefetch": ', "} trailing"),
]


def _whole(body: bytes) -> Any:
    """What :func:`codec.loads` gave before a prefetch was read apart: the body read whole."""
    if not codec._long_integer(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _outcome(read: Any, body: bytes) -> Any:
    try:
        data = read(body)
    except (ValueError, RecursionError) as error:
        return (type(error).__name__, str(error))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return ("data", repr(data))
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize("body", SPLIT_BODIES)
@pytest.mark.parametrize("again", [False, True])
def test_a_prefetch_read_apart_gives_what_the_body_read_whole_gives(body: bytes, again: bool) -> None:
    if again:
        _outcome(codec.loads, body)
    assert _outcome(codec.loads, body) == _outcome(_whole, body)


def test_a_known_prefetch_is_read_once() -> None:
    body = SPLIT_BODIES[0]
    first = codec.loads(body)
    second = codec.loads(body.replace(b'"x"}', b'"y"}'))
    assert second["prefetch"] is first["prefetch"]
    assert second["hookInstance"] == "y"


def test_changed_bodies_are_read_as_read_whole() -> None:
    """Bytes changed around a known prefetch object (and inside it): the same data or error as before."""
    rng = random.Random(18)
    body = _big('{"hook": "order-sign", "context": {"draftOrders": {"a": [1]}}, "prefetch": ', ', "x": "y"}')
    codec.loads(body)
    start = body.find(b'"prefetch"')
    alphabet = b'{}[]",: 0123456789ax\\'
    for _ in range(1500):
        changed = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            # near the cuts mostly: the start of the object, its end, the rest
            where = rng.choice(
                [start + rng.randint(-30, 30), len(body) - rng.randint(1, 40), rng.randrange(len(body))]
            )
            where = min(max(where, 0), len(changed) - 1)
            action = rng.random()
            if action < 0.4:
                changed[where] = rng.choice(alphabet)
            elif action < 0.7:
                del changed[where]
            else:
                changed.insert(where, rng.choice(alphabet))
        assert _outcome(codec.loads, bytes(changed)) == _outcome(_whole, bytes(changed)), bytes(changed)[-80:]
