"""durable_rules' hard limits, and how much of them a set of rules uses.

The limits were measured on durable_rules 2.0.28 (``../shared/durable-rules-notes.md``
and ``tests/unit/test_capacity.py``) and are kept with a margin. The durable_rules
backend refuses to compile a program beyond them; the linter reports them for every
(route, jurisdiction) program before anything is compiled. Both count with
:func:`program_load`, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal

import attrs

from ketacds.ruleset.ir import Pattern, Ref, Rule, Scalar, Test
from ketacds.ruleset.plan import absence_key, alternatives

__all__ = [
    "ABSENT",
    "MAX_FACT_PROPERTIES",
    "MAX_RULES_PER_FACT_TYPE",
    "MAX_RULES_PER_PROGRAM",
    "RESERVED_PROPERTIES",
    "SESSION",
    "ProgramLoad",
    "absent_property",
    "durable_properties",
    "member_property",
    "program_load",
    "test_property",
]

#: durable_rules allows about 512 rules per ruleset; ketacds keeps this many.
MAX_RULES_PER_PROGRAM = 500
#: durable_rules allows 64 rules to match one fact; ketacds keeps this many per fact type.
MAX_RULES_PER_FACT_TYPE = 60
#: A fact may carry at most this many properties, ``t``, ``id`` and ``sid`` included:
#: durable_rules refuses a fact of 255 (``MAX_OBJECT_PROPERTIES``, error 302). A list
#: (such as ``vs``) is one property, however long.
MAX_FACT_PROPERTIES = 254
#: The properties every asserted fact carries besides its fields: type, id, session.
RESERVED_PROPERTIES = ("t", "id", "sid")
#: The fact type of the markers that stand for "no input fact matches this pattern".
ABSENT = "absent"
#: The fact type of the warm-up fact every durable session is opened with, so that an
#: action has run in every session before it can be deleted.
SESSION = "__session"


@attrs.frozen
class ProgramLoad:
    """What one compiled program asks of durable_rules.

    ``durable_rules`` counts one durable rule per alternative of each rule's condition
    (its disjunctive normal form) plus the sink rule and the session rule. ``readers`` counts, per fact
    type, the durable rules with a pattern on that type (the sink, which reads every
    fact, included). ``widths`` is the most properties a fact of each type can carry
    as the engine asserts it: ``t``, ``id`` and ``sid``, one boolean property per
    distinct constant test (:func:`test_property`: the test is decided in Python and
    only its outcome is sent), one boolean property per value set a membership test
    names, and for the ``absent`` fact one property per negated pattern.
    """

    durable_rules: int
    readers: Mapping[str, int]
    widths: Mapping[str, int]


def program_load(rules: Iterable[Rule]) -> ProgramLoad:
    """Count the durable rules of a program holding ``rules``, in total and per fact type."""
    total = 2  # the sink, and the session rule (every session runs at least one action)
    readers: dict[str, int] = {SESSION: 1}
    properties: dict[str, set[str]] = {SESSION: set()}
    absent: set[str] = set()
    for rule in rules:
        for alternative in alternatives(rule):
            total += 1
            types = {pattern.fact for pattern in alternative.positive}
            for pattern in alternative.positive:
                properties.setdefault(pattern.fact, set()).update(durable_properties(pattern))
            if alternative.absent:
                types.add(ABSENT)
                absent.update(absence_key(pattern) for pattern in alternative.absent)
            if not alternative.positive and not alternative.absent:
                types.add("patient")  # anchored on the patient fact
                properties.setdefault("patient", set())
            for fact in types:
                readers[fact] = readers.get(fact, 0) + 1
    for fact in readers:
        readers[fact] += 1  # the sink
    widths = {fact: len(props) + len(RESERVED_PROPERTIES) for fact, props in properties.items()}
    if absent:
        widths[ABSENT] = len(absent) + len(RESERVED_PROPERTIES)
    return ProgramLoad(
        durable_rules=total, readers=dict(sorted(readers.items())), widths=dict(sorted(widths.items()))
    )


def member_property(field: str, valueset: str) -> str:
    """The boolean property that stands for "``field`` includes a code of ``valueset``"."""
    return f"{field}:{valueset}"


def absent_property(key: str) -> str:
    """The property of the ``absent`` fact that stands for "no fact matches pattern ``key``"."""
    return f"no:{key}"


# Operand text that can stand in a property name as it is (no JSON escapes, no spaces).
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.+-]{0,40}")
_OP_NAMES = {
    "eq": "=",
    "ne": "!=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "in": ":in:",
    "not_in": ":not_in:",
    "present": ":present:",
}


def _operand_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        text = format(Decimal(value).normalize(), "f")  # fixed point, never an exponent
        return text if len(text) <= 40 else "#" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
    text = str(value)
    if _PLAIN_TEXT.fullmatch(text):
        return f"'{text}'"
    return "'#" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest() + "'"


def test_property(test: Test) -> str:
    """The boolean property that stands for "this constant test holds on the fact".

    durable_rules is never given a field value to compare: every constant test of a
    pattern (comparison, ``in``, ``not_in``, ``present``) is decided in Python, with the
    exact semantics of the reference evaluator (``engine/match.py``: Decimal against
    the rule's constant), and the fact carries ``true`` under this name when the test
    holds. So no number ever crosses into durable's JSON parser, and no rounding can
    decide a comparison. Names are canonical: equal tests share one property; a number
    is written in fixed point (``1`` and ``1.0`` are one property), a string operand
    is quoted (or hashed when it holds characters a name should not).
    """
    assert not isinstance(test.value, Ref)
    if isinstance(test.value, tuple):
        operand = ",".join(_operand_text(v) for v in test.value)
    else:
        operand = _operand_text(test.value)
    return f"{test.field}{_OP_NAMES[test.op]}{operand}"


def durable_properties(pattern: Pattern) -> set[str]:
    """The properties of a fact that the durable tests of ``pattern`` read.

    Tests comparing with another pattern's fact are not given to durable_rules (they
    are checked in Python when the rule fires), so their fields are not counted.
    """
    props: set[str] = set()
    for test in pattern.tests:
        if isinstance(test.value, Ref):
            continue
        if test.op == "member":
            assert isinstance(test.value, tuple)
            props.update(member_property(test.field, str(valueset)) for valueset in test.value)
        else:
            props.add(test_property(test))
    return props
