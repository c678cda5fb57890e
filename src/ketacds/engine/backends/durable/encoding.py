"""How the facts of one program are sent to durable_rules: boolean properties, as JSON text.

durable_rules never sees a field value (``program.py``, module notes): every constant
test a durable pattern reads is decided here, in Python, with the reference evaluator's
semantics (``engine/match.py``), and the fact carries ``true`` under the test's name
(``capacity.test_property``); value-set membership is one property per value set
(``capacity.member_property``); "no input fact matches this negated pattern" is one
property of the single ``absent`` fact (``capacity.absent_property``).

:class:`FactEncoder` gives the same encoding two ways:

* :meth:`FactEncoder.encode`, a dict per fact (the definition, read by tests);
* :meth:`FactEncoder.body`, the JSON text durable_rules parses, byte for byte
  ``json.dumps(encode(...), separators=(",", ":"))`` without the id and session.
  This is the hot path of every assessment, so what a field's value gives is
  remembered: the properties a test field sends depend on its value alone, and the
  same values (statuses, booleans, small integers, value-set lists) recur from one
  patient to the next. The memories are bounded (cleared when full), so memory stays
  flat however many patients are assessed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from ketacds.engine.backends.durable.capacity import absent_property, member_property
from ketacds.engine.match import compile_test
from ketacds.ruleset.ir import Pattern, Test

__all__ = ["FactEncoder"]

Check = Callable[[Mapping[str, Any]], bool]
_Outcome = TypeVar("_Outcome")

# Compact JSON, made once (json.dumps with options builds an encoder per call).
encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

#: Values remembered per field (or value-set field) before its memory is cleared.
MEMO_LIMIT = 1024
_MISSING = object()


def _true(name: str) -> str:
    """``,"NAME":true``: one boolean property as it follows another in the JSON text."""
    return "," + encode_json(name) + ":true"


class _ByValue(Generic[_Outcome]):
    """What one field of a fact gives (``decide(value)``), remembered for recurring values.

    Tests read their own field only, so the outcome is a function of the field's value.
    Strings, integers, booleans and lists (value-set ids) recur from one patient to the
    next and are remembered; other values (``Decimal`` weights and ratios, nearly all
    distinct) are decided each time.
    """

    __slots__ = ("decide", "field", "memo", "missing")

    def __init__(self, field: str, decide: Callable[[Any], _Outcome], missing: _Outcome) -> None:
        self.field = field
        self.decide = decide
        self.missing = missing  # the outcome when the fact does not have the field
        self.memo: dict[Any, _Outcome] = {}

    def of(self, fact: Mapping[str, Any]) -> _Outcome:
        """The outcome for ``fact``."""
        value = fact.get(self.field, _MISSING)
        if value is _MISSING:
            return self.missing
        cls = value.__class__
        if cls is str:
            key: Any = value
        elif cls is int or cls is bool:
            key = (cls, value)  # True == 1, but no test treats them alike
        elif cls is list:
            key = (cls, *value)
        else:
            return self.decide(value)
        try:
            return self.memo[key]
        except KeyError:
            outcome = self.decide(value)
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = outcome
            return outcome
        except TypeError:  # an unhashable item in a list
            return self.decide(value)


def _test_text(field: str, checks: Sequence[tuple[str, Check]], when_missing: Sequence[str]) -> _ByValue[str]:
    """The test properties one field sends, as JSON text."""
    texts = tuple((_true(name), check) for name, check in checks)

    def decide(value: Any) -> str:
        probe = {field: value}  # a test reads its own field only
        return "".join(text for text, check in texts if check(probe))

    return _ByValue(field, decide, "".join(_true(name) for name in when_missing))


def _member_text(field: str, members: frozenset[str]) -> _ByValue[str]:
    """The value-set properties one codes field sends, as JSON text (each once, in order)."""

    def decide(valuesets: Any) -> str:
        sent: dict[str, None] = {}
        for valueset in valuesets:
            prop = member_property(field, valueset)
            if prop in members:
                sent[prop] = None
        return "".join(_true(prop) for prop in sent)

    return _ByValue(field, decide, "")


class _Negated:
    """The negated patterns on one fact type: which of them a fact matches, as a bit mask.

    Each test of each pattern is one bit; a field gives the bits of its tests that hold
    (remembered by value, :class:`_ByValue`); a pattern matches when all its bits are set.
    """

    __slots__ = ("fields", "patterns")

    def __init__(self, patterns: Sequence[tuple[str, Pattern]]) -> None:
        by_field: dict[str, list[tuple[int, Test]]] = {}
        masks: list[tuple[str, int]] = []
        bit = 0
        for key, pattern in patterns:
            mask = 0
            for test in pattern.tests:
                by_field.setdefault(test.field, []).append((1 << bit, test))
                mask |= 1 << bit
                bit += 1
            masks.append((key, mask))
        self.patterns = tuple(masks)
        self.fields = tuple(self._bits(field, tests) for field, tests in sorted(by_field.items()))

    @staticmethod
    def _bits(field: str, tests: Sequence[tuple[int, Test]]) -> _ByValue[int]:
        checks = tuple((bit, compile_test(test)) for bit, test in tests)
        # on a missing field only `present: false` holds (engine/match.py)
        missing = sum(bit for bit, test in tests if test.op == "present" and not test.value)

        def decide(value: Any) -> int:
            probe = {field: value}
            return sum(bit for bit, check in checks if check(probe))

        return _ByValue(field, decide, missing)

    def matched(self, fact: Mapping[str, Any]) -> list[str]:
        """The keys of the patterns ``fact`` (of this type) matches."""
        bits = 0
        for field in self.fields:
            bits |= field.of(fact)
        return [key for key, mask in self.patterns if bits & mask == mask]


class FactEncoder:
    """The encoding of facts for one compiled program.

    Args:
        fields: per fact type, each constant test durable reads, by property name.
        codes: per fact type, the codes fields read by value-set membership.
        members: per fact type, the value-set properties any pattern reads.
        absent: the negated input patterns, by absence key.
    """

    def __init__(
        self,
        fields: Mapping[str, Mapping[str, tuple[Test, Check]]],
        codes: Mapping[str, set[str]],
        members: Mapping[str, set[str]],
        absent: Mapping[str, Pattern],
    ) -> None:
        self._tests = {kind: dict(sorted(tests.items())) for kind, tests in fields.items()}
        self._members_of = {kind: frozenset(members.get(kind, ())) for kind in fields}
        self._codes_of = {kind: tuple(sorted(codes.get(kind, ()))) for kind in fields}
        # Per fact type, the tests grouped by field: (field, (name, check) for when the fact
        # has the field, names that hold when it has not (``present: false``)). Every other
        # test is false on a missing field, so a missing field costs no check at all.
        self._plain = {kind: self._by_field(tests) for kind, tests in self._tests.items()}
        self._bodies: dict[str, Callable[[Mapping[str, Any]], str]] = {
            kind: self._body_of(kind) for kind in fields
        }
        self._absent_keys = tuple(sorted(absent))
        self._absent_text = {key: _true(absent_property(key)) for key in self._absent_keys}
        negated: dict[str, list[tuple[str, Pattern]]] = {}
        for key in self._absent_keys:
            negated.setdefault(absent[key].fact, []).append((key, absent[key]))
        self._negated = {kind: _Negated(patterns) for kind, patterns in negated.items()}

    @staticmethod
    def _by_field(
        tests: Mapping[str, tuple[Test, Check]],
    ) -> tuple[tuple[str, tuple[tuple[str, Check], ...], tuple[str, ...]], ...]:
        fields = sorted({test.field for test, _ in tests.values()})
        return tuple(
            (
                field,
                tuple((name, check) for name, (test, check) in tests.items() if test.field == field),
                tuple(
                    name
                    for name, (test, _) in tests.items()
                    if test.field == field and test.op == "present" and not test.value
                ),
            )
            for field in fields
        )

    def reads(self, kind: str) -> bool:
        """Whether any durable pattern of the program reads facts of type ``kind``."""
        return kind in self._bodies

    def test_checks(self, kind: str) -> dict[str, Check]:
        """The boolean properties sent for facts of type ``kind``, each with the check that decides it."""
        return {name: check for name, (_, check) in self._tests.get(kind, {}).items()}

    def encode(self, durable_id: str, fact: Mapping[str, Any], sid: str) -> dict[str, Any] | None:
        """The fact as durable sees it (``None`` when no rule of this program reads its type)."""
        kind = fact["t"]
        plain = self._plain.get(kind)
        if plain is None:
            return None
        encoded: dict[str, Any] = {"id": durable_id, "sid": sid, "t": kind}
        for field, checks, when_missing in plain:
            if field in fact:
                for name, check in checks:
                    if check(fact):
                        encoded[name] = True
            else:
                for name in when_missing:
                    encoded[name] = True
        members = self._members_of[kind]
        for name in self._codes_of[kind]:
            for valueset in fact.get(name, ()):
                prop = member_property(name, valueset)
                if prop in members:
                    encoded[prop] = True
        return encoded

    def body(self, fact: Mapping[str, Any]) -> str | None:
        """The JSON text of :meth:`encode` after the id and session (``,"t":…}``); ``None`` as there."""
        body = self._bodies.get(fact["t"])
        return None if body is None else body(fact)

    def body_of(self, kind: str) -> Callable[[Mapping[str, Any]], str] | None:
        """:meth:`body` for facts of type ``kind`` (``None`` when no rule reads the type)."""
        return self._bodies.get(kind)

    def _body_of(self, kind: str) -> Callable[[Mapping[str, Any]], str]:
        head = ',"t":' + encode_json(kind)
        members = self._members_of[kind]
        if members & set(self._tests[kind]):
            # A value-set property could share a name with a test property (one key in
            # the dict, two in the text): never on ketacds' rules, but stay exact.
            def exact(fact: Mapping[str, Any]) -> str:
                encoded = self.encode("", fact, "")
                assert encoded is not None
                del encoded["id"], encoded["sid"]
                return "," + encode_json(encoded)[1:]

            return exact
        parts = tuple(_test_text(*field) for field in self._plain[kind]) + tuple(
            _member_text(name, members) for name in self._codes_of[kind]
        )

        def body(fact: Mapping[str, Any]) -> str:
            text = head
            for part in parts:
                text += part.of(fact)
            return text + "}"

        return body

    def absent_keys(self, facts: Sequence[Mapping[str, Any]]) -> list[str]:
        """The keys of the negated patterns that no input fact matches, sorted."""
        if not self._negated:
            return []
        matched: set[str] = set()
        negated = self._negated
        for fact in facts:
            patterns = negated.get(fact["t"])
            if patterns is not None:
                matched.update(patterns.matched(fact))
        return [key for key in self._absent_keys if key not in matched]

    def absent_text(self, keys: Sequence[str]) -> str:
        """The properties of the ``absent`` fact for these keys (sorted), as JSON text."""
        return "".join(self._absent_text[key] for key in keys)
