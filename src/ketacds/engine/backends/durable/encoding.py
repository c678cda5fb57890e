"""How the facts of one program are sent to durable_rules: boolean properties, as JSON text.

durable_rules never sees a field value (``program.py``, module notes): every constant
test a durable pattern reads is decided here, in Python, with the reference evaluator's
semantics (``engine/match.py``), and the fact carries ``true`` under the test's name
(``capacity.test_property``); value-set membership is one property per value set
(``capacity.member_property``); "no input fact matches this negated pattern" is one
property of the single ``absent`` fact (``capacity.absent_property``).

:class:`FactEncoder` gives the encoding two ways:

* :meth:`FactEncoder.encode`, a dict per fact, and :meth:`FactEncoder.absent_keys`
  (what the definition means, read by tests);
* :meth:`FactEncoder.batch`, the same as the JSON text durable_rules parses, byte for
  byte ``json.dumps(encode(...), separators=(",", ":"))``, with the absent keys, in one
  pass over the facts. This is the hot path of every assessment. A test reads its own
  field only, so what a field gives (its properties' text, and which tests of negated
  patterns hold, as bits) is a function of the field's value, and the same values
  (statuses, booleans, small integers, value-set lists) recur from one patient to the
  next: each field remembers what its recent values gave. The memories are bounded
  (cleared when full), so memory stays flat however many patients are assessed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ketacds.engine.backends.durable.capacity import MAX_FACTS, absent_property, member_property
from ketacds.engine.match import compile_test
from ketacds.ruleset.ir import Pattern, Test

__all__ = ["FactEncoder"]

Check = Callable[[Mapping[str, Any]], bool]
# What one field of one fact gives: the JSON text of its properties, and the bits of the
# negated patterns' tests that hold on it (for a whole fact: of the patterns it matches).
_Outcome = tuple[str, int]

# Compact JSON, made once (json.dumps with options builds an encoder per call).
encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

#: Values remembered per field before its memory is cleared.
MEMO_LIMIT = 1024
_MISSING = object()


def _true(name: str) -> str:
    """``,"NAME":true``: one boolean property as it follows another in the JSON text."""
    return "," + encode_json(name) + ":true"


class _Field:
    """One field of one fact type: what its value gives (:data:`_Outcome`), remembered.

    ``texts`` are the test properties the field sends (each with its check) or, for a
    codes field read by value-set membership, ``members`` are the value-set properties
    read; ``bits`` are the negated patterns' tests on the field.
    """

    __slots__ = ("bits", "field", "members", "memo", "missing", "texts")

    def __init__(
        self,
        field: str,
        texts: Sequence[tuple[str, Check]] = (),
        when_missing: Sequence[str] = (),
        members: frozenset[str] | None = None,
        bits: Sequence[tuple[int, Test]] = (),
    ) -> None:
        self.field = field
        self.texts = tuple((_true(name), check) for name, check in texts)
        self.members = members
        self.bits = tuple((bit, compile_test(test)) for bit, test in bits)
        # on a missing field only `present: false` holds (engine/match.py), and no value set
        missing_bits = sum(bit for bit, test in bits if test.op == "present" and not test.value)
        self.missing: _Outcome = ("".join(_true(name) for name in when_missing), missing_bits)
        self.memo: dict[Any, _Outcome] = {}

    def decide(self, value: Any) -> _Outcome:
        """What the field gives when it holds ``value`` (not remembered)."""
        probe = {self.field: value}  # a test reads its own field only
        if self.members is None:
            text = "".join(name for name, check in self.texts if check(probe))
        else:
            sent: dict[str, None] = {}  # each property once, in order (as dict keys are)
            for valueset in value:
                prop = member_property(self.field, valueset)
                if prop in self.members:
                    sent[prop] = None
            text = "".join(_true(prop) for prop in sent)
        return text, sum(bit for bit, check in self.bits if check(probe))


class _Plan:
    """How facts of one type are encoded: the fields read, and the negated patterns.

    (Remembering what a whole fact gives, keyed by all its values, was measured: no
    faster on patients seen before, slower on new ones; each field remembers instead.)
    """

    __slots__ = ("base", "exact", "fields", "head", "patterns")

    def __init__(
        self,
        head: str | None,
        fields: Sequence[_Field],
        patterns: Sequence[tuple[int, int]],
        exact: Callable[[Mapping[str, Any]], str] | None,
    ) -> None:
        self.head = head  # ',"t":KIND' (None: no durable pattern reads the type)
        self.fields = tuple(fields)
        self.patterns = tuple(patterns)  # (the pattern's bit among all, the bits of its tests)
        self.exact = exact
        self.base = 0  # the first durable number of facts of this type (set by FactEncoder)

    def outcome(self, fact: Mapping[str, Any]) -> _Outcome:
        """What ``fact`` gives: its properties as JSON text, and a bit per negated pattern it matches."""
        text = "" if self.head is None else self.head
        bits = 0
        for field in self.fields:
            value = fact.get(field.field, _MISSING)
            if value is _MISSING:
                outcome = field.missing
            else:
                cls = value.__class__
                if cls is str:
                    key: Any = value
                elif cls is int or cls is bool:
                    key = (cls, value)  # True == 1, but no test treats them alike
                elif cls is list:
                    key = (cls, *value)
                else:  # Decimal weights and ratios: nearly all distinct, not remembered
                    key = None
                if key is None:
                    outcome = field.decide(value)
                else:
                    try:
                        outcome = field.memo[key]
                    except KeyError:
                        outcome = field.decide(value)
                        if len(field.memo) >= MEMO_LIMIT:
                            field.memo.clear()
                        field.memo[key] = outcome
                    except TypeError:  # an unhashable item in a list
                        outcome = field.decide(value)
            text += outcome[0]
            bits |= outcome[1]
        if self.exact is not None:
            text = self.exact(fact)
        matched = 0
        for pattern, mask in self.patterns:
            if bits & mask == mask:
                matched |= pattern
        return text, matched


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
        self._absent_keys = tuple(sorted(absent))
        self._absent_text = {key: _true(absent_property(key)) for key in self._absent_keys}
        negated: dict[str, list[tuple[int, Pattern]]] = {}
        for number, key in enumerate(self._absent_keys):
            negated.setdefault(absent[key].fact, []).append((number, absent[key]))
        self._plans = {kind: self._plan(kind, negated.get(kind, ())) for kind in sorted({*fields, *negated})}
        # Each fact type's range of durable numbers (see batch).
        self._span = MAX_FACTS // len(self._plans) if self._plans else MAX_FACTS
        for index, plan in enumerate(self._plans.values()):
            plan.base = index * self._span

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

    def _plan(self, kind: str, negated: Sequence[tuple[int, Pattern]]) -> _Plan:
        # Each test of each negated pattern is one bit; a pattern matches a fact when all
        # its bits are set (a pattern without tests matches every fact of its type).
        bits: dict[str, list[tuple[int, Test]]] = {}
        patterns: list[tuple[int, int]] = []
        bit = 1
        for number, pattern in negated:
            mask = 0
            for test in pattern.tests:
                bits.setdefault(test.field, []).append((bit, test))
                mask |= bit
                bit <<= 1
            patterns.append((1 << number, mask))
        if kind not in self._tests:  # only negated patterns read this type
            fields = [_Field(field, bits=tests) for field, tests in sorted(bits.items())]
            return _Plan(None, fields, patterns, None)
        # The fields in the order the dict encoding adds their properties: test fields,
        # then codes fields; a field's negation bits go with its first appearance.
        members = self._members_of[kind]
        fields = [_Field(name, texts, no, bits=bits.pop(name, ())) for name, texts, no in self._plain[kind]]
        fields += [_Field(field, members=members, bits=bits.pop(field, ())) for field in self._codes_of[kind]]
        fields += [_Field(field, bits=tests) for field, tests in sorted(bits.items())]
        exact = None
        if members & set(self._tests[kind]):
            # A value-set property could share a name with a test property (one key in
            # the dict, two in the text): never on ketacds' rules, but stay exact.
            def exact(fact: Mapping[str, Any]) -> str:
                encoded = self.encode("", fact, "")
                assert encoded is not None
                del encoded["id"], encoded["sid"]
                return "," + encode_json(encoded)[1:-1]

        return _Plan(',"t":' + encode_json(kind), fields, patterns, exact)

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

    def absent_keys(self, facts: Sequence[Mapping[str, Any]]) -> list[str]:
        """The keys of the negated patterns that no input fact matches, sorted."""
        result = self.batch(facts, None)
        assert result is not None  # nothing is numbered
        return result[2]

    def batch(
        self,
        facts: Sequence[Mapping[str, Any]],
        heads: Mapping[int, str] | None,
        make_head: Callable[[int], str] | None = None,
        *,
        by_position: bool = False,
    ) -> tuple[list[str], dict[int, Mapping[str, Any]], list[str]] | None:
        """The facts as durable sees them, in one pass.

        Each fact some durable pattern reads gets a number, its durable id: the ``k``-th
        fact of a type is number ``base + k``, where each type has its own range of
        :data:`~ketacds.engine.backends.durable.capacity.MAX_FACTS` divided among the
        types (so the first trial of every patient is the same number, and what durable
        sends back for it is the same text, which the driver remembers); with
        ``by_position`` the number is the fact's position in ``facts``. Either way every
        number is below ``MAX_FACTS``, whose ids are checked collision-free.

        Args:
            facts: the input facts of one assessment.
            heads: the start of each fact's JSON text by its number (``{"id":…,"sid":…``),
                or ``None`` for the absent keys alone.
            make_head: makes (and remembers) a head that ``heads`` does not hold yet.
            by_position: number the facts by position.

        Returns:
            The JSON text of each fact asserted (its head followed by :meth:`encode`'s
            properties), those facts by number, and the keys of the negated patterns no
            fact matches (sorted, as :meth:`absent_keys`). ``None`` when a type has more
            facts than its range (then number them by position).
        """
        plans = self._plans
        span = self._span
        texts: list[str] = []
        numbered: dict[int, Mapping[str, Any]] = {}
        counts: dict[str, int] = {}  # per type, facts numbered so far
        matched = 0  # a bit per negated pattern some fact matches
        for position, fact in enumerate(facts):
            kind = fact["t"]
            plan = plans.get(kind)
            if plan is None:
                continue
            text, bits = plan.outcome(fact)
            matched |= bits
            if plan.head is not None and heads is not None:
                if by_position:
                    number = position
                else:
                    count = counts.get(kind, 0)
                    if count == span:
                        return None
                    counts[kind] = count + 1
                    number = plan.base + count
                head = heads.get(number)
                if head is None:
                    assert make_head is not None
                    head = make_head(number)
                texts.append(head + text + "}")
                numbered[number] = fact
        absent = [key for number, key in enumerate(self._absent_keys) if not matched >> number & 1]
        return texts, numbered, absent

    def absent_text(self, keys: Sequence[str]) -> str:
        """The properties of the ``absent`` fact for these keys (sorted), as JSON text."""
        return "".join(self._absent_text[key] for key in keys)
