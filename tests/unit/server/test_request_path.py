"""The request path's faster steps give what the steps they replace gave."""

from __future__ import annotations

import copy
import random
import uuid
from unittest import mock

import pytest

from ketacds import markup
from ketacds.adapters import cds_hooks
from ketacds.server import app, middleware


def test_a_u_escape_is_found_as_in_finds_it():
    rng = random.Random(18)
    for _ in range(20_000):
        body = bytes(rng.choice(b"\\\\uab") for _ in range(rng.randint(0, 90)))
        assert middleware._has_u_escape(body) == (b"\\u" in body), body


def test_a_card_uuid_is_uuid4s():
    for _ in range(2_000):
        seed = random.randbytes(16)
        with mock.patch("os.urandom", return_value=seed):
            assert app.random_uuid() == str(uuid.uuid4())


def _old_md_escape(text: str, policy: markup.MdEscape) -> str:
    escaped = markup._MD_SPECIALS[policy].sub(r"\\\1", text)
    return "\\" + escaped if escaped[:1] in markup._MD_LEADING[policy] else escaped


@pytest.mark.parametrize("policy", ["text", "record", "table-cell"])
def test_md_escape_is_the_substitution_it_replaces(policy):
    rng = random.Random(policy)
    chars = "ab \\`*_[]<>|#+-=é\n"
    for _ in range(20_000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(0, 8)))
        assert markup.md_escape(text, policy) == _old_md_escape(text, policy), text


def test_json_data_is_copied_as_deepcopy_copies_it():
    data = {"a": [1, 2.5, {"b": None, "c": True}], "d": "text", "e": {"f": [[], {}]}, "g": (1, 2)}
    copied = cds_hooks._json_copy(data)
    assert copied == copy.deepcopy(data)
    assert copied["a"] is not data["a"]
    assert copied["a"][2] is not data["a"][2]
    assert copied["e"]["f"][0] is not data["e"]["f"][0]
