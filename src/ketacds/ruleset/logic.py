"""What a condition allows: contradictions and implications between conditions.

The linter asks two questions of the intermediate form, and this module answers them
conservatively (a "yes" is always right; a "no" may only mean "cannot tell"):

* can an alternative of a condition (one conjunction of its disjunctive normal form,
  ``ruleset/plan.py``) ever hold? (:func:`dead_reason`)
* does one rule's condition imply another's? (:func:`implies`)

Each field of a pattern is read as the set of states its tests allow: unknown, or a
known value within bounds, inside an allowed set and outside an excluded one. Every
comparison is false on an unknown field (``docs/ruleset-format.md``), so any test but
``present: false`` requires the field to be known. Value-set membership and
references to other facts are compared by equality only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from ketacds.models.facts import FACT_TYPES
from ketacds.ruleset.ir import Pattern, Ref, Rule, Scalar, Test
from ketacds.ruleset.plan import SINGLE_FACT_TYPES, Alternative, alternatives, flag_name

__all__ = [
    "Space",
    "alternatives_imply",
    "dead_reason",
    "equivalent",
    "implies",
    "live_alternatives",
    "pattern_implies",
    "space",
]

_OP_WORDS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "ne": "≠", "in": "in"}


@attrs.frozen
class _Bound:
    value: Decimal
    inclusive: bool


@attrs.frozen
class Space:
    """The states one field may be in under a pattern's tests.

    ``known``: ``True`` when the field must be known, ``False`` when it must be
    unknown, ``None`` when either will do.
    """

    kind: str
    known: bool | None = None
    low: _Bound | None = None
    high: _Bound | None = None
    allowed: frozenset[Scalar] | None = None
    excluded: frozenset[Scalar] = frozenset()
    contradiction: bool = False  # present: true and present: false together
    opaque: bool = False  # a test this module does not read (a reference, an operator it does not know)

    def admits(self, value: Scalar) -> bool:
        """Whether a known ``value`` passes every test."""
        if self.known is False or self.contradiction:
            return False
        if self.allowed is not None and value not in self.allowed:
            return False
        if value in self.excluded:
            return False
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            return True
        number = Decimal(value)
        if self.low is not None and (
            number < self.low.value or (number == self.low.value and not self.low.inclusive)
        ):
            return False
        return not (
            self.high is not None
            and (number > self.high.value or (number == self.high.value and not self.high.inclusive))
        )

    def _finite(self) -> frozenset[Scalar] | None:
        """Every known value admitted, when there are finitely many."""
        if self.allowed is not None:
            return frozenset(v for v in self.allowed if self.admits(v))
        if self.kind == "bool":
            return frozenset(v for v in (True, False) if self.admits(v))
        return None

    def admits_unknown(self) -> bool:
        """Whether the field may be unknown."""
        return self.known is not True and not self.contradiction

    def admits_known(self) -> bool:
        """Whether some known value passes every test."""
        if self.known is False or self.contradiction:
            return False
        finite = self._finite()
        if finite is not None:
            return bool(finite)
        if self.low is None or self.high is None:
            return True
        if self.low.value < self.high.value:
            return True
        return (
            self.low.value == self.high.value
            and self.low.inclusive
            and self.high.inclusive
            and self.low.value not in self.excluded
        )

    @property
    def empty(self) -> bool:
        """No state of the field passes every test."""
        return not self.admits_unknown() and not self.admits_known()

    def within(self, other: Space) -> bool:
        """Every state this space admits, ``other`` admits too."""
        if self.empty:
            return True
        if self.admits_unknown() and not other.admits_unknown():
            return False
        if not self.admits_known():
            return True
        if other.known is False or other.contradiction or other.opaque:
            return False
        finite = self._finite()
        if finite is not None:
            return all(other.admits(v) for v in finite)
        if other.allowed is not None:
            return False
        if not all(not self.admits(v) for v in other.excluded):
            return False
        return _lower_within(self.low, other.low) and _upper_within(self.high, other.high)


def _lower_within(mine: _Bound | None, theirs: _Bound | None) -> bool:
    if theirs is None:
        return True
    if mine is None:
        return False
    return mine.value > theirs.value or (
        mine.value == theirs.value and (theirs.inclusive or not mine.inclusive)
    )


def _upper_within(mine: _Bound | None, theirs: _Bound | None) -> bool:
    if theirs is None:
        return True
    if mine is None:
        return False
    return mine.value < theirs.value or (
        mine.value == theirs.value and (theirs.inclusive or not mine.inclusive)
    )


def _tighter_low(a: _Bound | None, b: _Bound) -> _Bound:
    if a is None or b.value > a.value or (b.value == a.value and not b.inclusive):
        return b
    return a


def _tighter_high(a: _Bound | None, b: _Bound) -> _Bound:
    if a is None or b.value < a.value or (b.value == a.value and not b.inclusive):
        return b
    return a


def space(kind: str, tests: Iterable[Test]) -> Space:
    """The states a field of ``kind`` may be in under ``tests``, all on that one field."""
    needs_known = needs_unknown = False
    low: _Bound | None = None
    high: _Bound | None = None
    allowed: frozenset[Scalar] | None = None
    excluded: set[Scalar] = set()
    opaque = False
    for test in tests:
        if test.op == "present":
            needs_known |= bool(test.value)
            needs_unknown |= not test.value
            continue
        needs_known = True  # every comparison is false on an unknown field
        if isinstance(test.value, Ref):
            opaque = True
        elif test.op in ("eq", "in"):
            values = frozenset(test.value) if isinstance(test.value, tuple) else frozenset({test.value})
            allowed = values if allowed is None else allowed & values
        elif test.op == "ne":
            excluded.add(_scalar(test.value))
        elif test.op in ("gt", "gte"):
            low = _tighter_low(low, _Bound(Decimal(_number(test.value)), test.op == "gte"))
        elif test.op in ("lt", "lte"):
            high = _tighter_high(high, _Bound(Decimal(_number(test.value)), test.op == "lte"))
        else:  # an operator added after this module was written: never claim to know what it allows
            opaque = True
    return Space(
        kind=kind,
        known=True
        if needs_known and not needs_unknown
        else False
        if needs_unknown and not needs_known
        else None,
        low=low,
        high=high,
        allowed=allowed,
        excluded=frozenset(excluded),
        contradiction=needs_known and needs_unknown,
        opaque=opaque,
    )


def _scalar(value: object) -> Scalar:
    assert isinstance(value, str | int | Decimal | bool)
    return value


def _number(value: object) -> int | Decimal:
    assert isinstance(value, int | Decimal)
    return value


# ---------------------------------------------------------------- patterns


def _fields(pattern: Pattern) -> dict[str, list[Test]]:
    """A pattern's tests by field, leaving out membership and references (compared apart)."""
    by_field: dict[str, list[Test]] = {}
    for test in pattern.tests:
        if test.op != "member" and not isinstance(test.value, Ref):
            by_field.setdefault(test.field, []).append(test)
    return by_field


def _kind(fact: str, field: str) -> str:
    return FACT_TYPES.get(fact, {}).get(field, "text")


def _members(pattern: Pattern) -> list[frozenset[str]]:
    groups = []
    for test in pattern.tests:
        if test.op == "member":
            assert isinstance(test.value, tuple)
            groups.append(frozenset(str(v) for v in test.value))
    return groups


def _refs(pattern: Pattern) -> set[Test]:
    return {test for test in pattern.tests if isinstance(test.value, Ref)}


def _empty_field(pattern: Pattern) -> str | None:
    """The first field whose tests admit no state, described, or ``None``."""
    for field, tests in sorted(_fields(pattern).items()):
        if space(_kind(pattern.fact, field), tests).empty:
            return _describe_tests(field, tests)
    return None


def _describe_tests(field: str, tests: Sequence[Test]) -> str:
    parts = []
    for test in tests:
        if test.op == "present":
            parts.append(f"{field} {'known' if test.value else 'unknown'}")
        elif isinstance(test.value, tuple):
            parts.append(f"{field} in [{', '.join(map(str, test.value))}]")
        else:
            parts.append(f"{field} {_OP_WORDS[test.op]} {test.value}")
    return " and ".join(parts)


def pattern_implies(p: Pattern, q: Pattern) -> bool:
    """Every fact that matches ``p`` matches ``q`` (ignoring aliases)."""
    if p.fact != q.fact:
        return False
    if not _refs(q) <= _refs(p):
        return False
    if not all(any(mine <= theirs for mine in _members(p)) for theirs in _members(q)):
        return False
    mine = _fields(p)
    for field, tests in _fields(q).items():
        kind = _kind(q.fact, field)
        if not space(kind, mine.get(field, [])).within(space(kind, tests)):
            return False
    return True


# ------------------------------------------------------------ alternatives


def dead_reason(alternative: Alternative) -> str | None:
    """Why one alternative of a condition can never hold, or ``None`` if it may."""
    for pattern in alternative.positive:
        reason = _empty_field(pattern)
        if reason is not None:
            return f"no {pattern.fact} fact can have {reason}"
    for fact in sorted(SINGLE_FACT_TYPES):
        # The patterns of one condition match different facts, and there is only one of these.
        if sum(p.fact == fact for p in alternative.positive) > 1:
            return f"it needs two {fact} facts, but there is only one: merge the tests into one pattern"
    read = {flag_name(p) for p in alternative.positive} - {None}
    for flag in alternative.missing_flags:
        if flag in read:
            return f"it needs flag {flag!r} both derived and not derived"
    for negated in alternative.absent:
        if negated.fact in SINGLE_FACT_TYPES and not negated.tests:
            return f"it needs no {negated.fact} fact, but there is always one"
        if _refs(negated):
            continue
        for pattern in alternative.positive:
            if pattern_implies(pattern, negated):
                return f"a {pattern.fact} fact it needs would itself match the pattern it needs absent"
    return None


def _alternative_implies(b: Alternative, a: Alternative) -> bool:
    """Whenever ``b`` holds, ``a`` holds."""
    if not set(a.missing_flags) <= set(b.missing_flags):
        return False
    if not all(any(pattern_implies(na, nb) for nb in b.absent) for na in a.absent):
        return False
    needed, offered = a.positive, b.positive
    if len(needed) > len(offered) or len(offered) > 8:
        return False
    # Distinct facts of b must stand for distinct patterns of a.
    return any(
        all(pattern_implies(p, q) for p, q in zip(choice, needed, strict=True))
        for choice in itertools.permutations(offered, len(needed))
    )


def live_alternatives(rule: Rule) -> tuple[Alternative, ...]:
    """The alternatives of a rule's condition that can hold."""
    return tuple(alt for alt in alternatives(rule) if dead_reason(alt) is None)


def alternatives_imply(mine: Sequence[Alternative], theirs: Sequence[Alternative]) -> bool:
    """Whenever one of ``mine`` holds, one of ``theirs`` does."""
    return all(any(_alternative_implies(b, a) for a in theirs) for b in mine)


def implies(b: Rule, a: Rule) -> bool:
    """Whenever ``b``'s condition holds, ``a``'s does (a conservative answer)."""
    return alternatives_imply(live_alternatives(b), live_alternatives(a))


def equivalent(a: Rule, b: Rule) -> bool:
    """The two conditions hold for exactly the same facts (a conservative answer)."""
    return implies(a, b) and implies(b, a)
