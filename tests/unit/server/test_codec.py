"""The service's JSON codec reads every body exactly as json.loads does (orjson only where it agrees)."""

from __future__ import annotations

import json
import math

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
    b'{"a": "x:y", "b": ":", "c\\u003a": "\\u003a", "d": "\\\\u003a", "e": "\\":"}',
    b'{"a": {"b": 1}, "b": {"a": 1}, "c": [{"k": 1}, {"k": 2}]}',
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


@pytest.mark.parametrize(
    ("body", "key", "where"),
    [
        (b'{"a": 1, "a": 2}', "a", "line 1, column 10"),
        (b'{"x": {"b": 1, "c": ":", "b": 2}}', "b", "line 1, column 26"),
        (b'{"a" : 1,\n "a"\t: 2}', "a", "line 2, column 2"),
        (b'{"a\\u003a": 1, "a:": 2}', "a:", "line 1, column 16"),  # a colon written as an escape
        (b'{"n": 12345678901234567890, "n": 1}', "n", "line 1, column 29"),  # read by json.loads
        (b'{"v": "x:y:z", "v": 1}', "v", "line 1, column 16"),
    ],
)
def test_a_key_given_twice_is_refused_naming_it(body: bytes, key: str, where: str) -> None:
    """orjson and json.loads keep the last of two equal keys; the service refuses the body."""
    with pytest.raises(codec.DuplicateKeyError) as raised:
        codec.loads(body)
    assert f"duplicate key {key!r} ({where})" in raised.value.msg
    assert isinstance(raised.value, json.JSONDecodeError)  # answered as any body that is not JSON
