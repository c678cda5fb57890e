"""durable_rules' hard limits, how much of them a set of rules uses, and the encodings.

The limits were measured on durable_rules 2.0.28 (``../shared/durable-rules-notes.md``
and ``tests/unit/engine/test_capacity.py``) and are kept with a margin. The durable_rules
backend refuses to compile a program beyond them (:func:`refuse_beyond_limits`); the
linter asks the backend for the same limits for every (route, jurisdiction) program
before anything is compiled (:func:`lint_problems`, through
:meth:`~ketacds.engine.backends.durable.DurableBackend.capacity`). Both count with
:func:`program_load`, so they cannot disagree.

The encodings (:func:`test_property`, :func:`member_property`, :func:`absent_property`,
:func:`absence_key`) name the boolean properties a fact carries when it is sent to
durable_rules; they are counted here and used by ``program.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

import attrs

from ketacds.engine.backend import CapacityProblem
from ketacds.errors import EngineCapacityError
from ketacds.ruleset import checks
from ketacds.ruleset.ir import Pattern, Ref, Rule, Scalar, Test, to_data
from ketacds.ruleset.plan import alternatives

__all__ = [
    "ABSENT",
    "MAX_FACTS",
    "MAX_FACT_PROPERTIES",
    "MAX_RULES_PER_FACT_TYPE",
    "MAX_RULES_PER_PROGRAM",
    "RESERVED_PROPERTIES",
    "SESSION",
    "ProgramLoad",
    "absence_key",
    "absent_property",
    "durable_properties",
    "fnv1a_32",
    "lint_problems",
    "member_property",
    "program_load",
    "refuse_beyond_limits",
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
#: Facts one assessment may assert; their ids are checked collision-free up to here.
MAX_FACTS = 4096
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


# What each exceeded limit is called when compiling (EngineCapacityError, after the program's
# name) and when linting (a finding on the manifest): {count} is what the program needs,
# {limit} what ketacds allows, {fact} the fact type, {program} "ROUTE in JURISDICTION".
_REFUSALS = {
    checks.PROGRAM_TOO_LARGE: "{count} durable rules exceed durable_rules' limit of about 512 per ruleset "
    "(ketacds keeps {limit}); narrow rule scopes",
    checks.FACT_TYPE_OVERLOADED: "{count} durable rules read {fact} facts; durable_rules allows 64 rules "
    "to match one fact (ketacds keeps {limit})",
    checks.FACT_TOO_WIDE: "{fact} facts would carry {count} properties; durable_rules accepts at most "
    "{limit} (fewer value sets or negated patterns per fact type)",
}
_FINDINGS = {
    checks.PROGRAM_TOO_LARGE: "the program for {program} has {count} durable rules (at most {limit}); "
    "narrow rule scopes or simplify conditions",
    checks.FACT_TYPE_OVERLOADED: "in the program for {program}, {count} durable rules read {fact} facts "
    "(at most {limit})",
    checks.FACT_TOO_WIDE: "in the program for {program}, {fact} facts would carry {count} properties "
    "(durable_rules refuses more than {limit}): fewer value sets or negated patterns on that fact type",
}


def _exceeded(durable_rules: int, load: ProgramLoad) -> Iterator[tuple[str, dict[str, object]]]:
    """Each limit a program exceeds, in order: the lint code, and the words for its message."""
    if durable_rules > MAX_RULES_PER_PROGRAM:
        yield checks.PROGRAM_TOO_LARGE, {"count": durable_rules, "limit": MAX_RULES_PER_PROGRAM, "fact": ""}
    for fact, readers in load.readers.items():
        if readers > MAX_RULES_PER_FACT_TYPE:
            yield (
                checks.FACT_TYPE_OVERLOADED,
                {"count": readers, "limit": MAX_RULES_PER_FACT_TYPE, "fact": repr(fact)},
            )
    for fact, width in load.widths.items():
        if width > MAX_FACT_PROPERTIES:
            yield checks.FACT_TOO_WIDE, {"count": width, "limit": MAX_FACT_PROPERTIES, "fact": repr(fact)}


def refuse_beyond_limits(name: str, durable_rules: int, rules: Iterable[Rule]) -> None:
    """Refuse to compile program ``name`` (``durable_rules`` rules compiled from ``rules``) beyond a limit.

    Raises:
        EngineCapacityError: too many durable rules, too many reading one fact type, or a
            fact type that would carry too many properties (the first limit exceeded).
    """
    for code, words in _exceeded(durable_rules, program_load(rules)):
        raise EngineCapacityError(f"{name}: " + _REFUSALS[code].format(**words))


def lint_problems(rules: Iterable[Rule], route: str, jurisdiction: str) -> tuple[CapacityProblem, ...]:
    """What the linter reports for the program of ``rules`` (``route`` in ``jurisdiction``): KL040-KL042."""
    load = program_load(rules)
    program = f"{route} in {jurisdiction}"
    return tuple(
        CapacityProblem(code, _FINDINGS[code].format(program=program, **words))
        for code, words in _exceeded(load.durable_rules, load)
    )


def absence_key(pattern: Pattern) -> str:
    """A stable key for "no input fact matches ``pattern``" (a digest of its canonical form, no alias)."""
    data = to_data(attrs.evolve(pattern, alias=None))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def fnv1a_32(text: str) -> int:
    """The 32-bit hash durable_rules identifies sessions and facts by (``fnv1Hash32``)."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value ^= byte if byte < 128 else byte - 256 & 0xFFFFFFFF
        value = (value * 16777619) & 0xFFFFFFFF
    return value


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
