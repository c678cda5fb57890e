"""durable_rules' hard limits, and how much of them a set of rules uses.

The limits were measured on durable_rules 2.0.28 (``../shared/durable-rules-notes.md``
and ``tests/unit/test_capacity.py``) and are kept with a margin. The durable_rules
backend refuses to compile a program beyond them; the linter reports them for every
(route, jurisdiction) program before anything is compiled. Both count with
:func:`program_load`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from ketacds.models.facts import FACT_TYPES
from ketacds.ruleset.ir import Rule
from ketacds.ruleset.plan import alternatives

__all__ = [
    "ABSENT",
    "MAX_FACT_PROPERTIES",
    "MAX_RULES_PER_FACT_TYPE",
    "MAX_RULES_PER_PROGRAM",
    "RESERVED_PROPERTIES",
    "ProgramLoad",
    "fact_properties",
    "program_load",
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
#: The fact type of the marker every session gets, so that every session runs an action.
SESSION = "__session"


@attrs.frozen
class ProgramLoad:
    """What one compiled program asks of durable_rules.

    ``durable_rules`` counts one durable rule per alternative of each rule's condition
    (its disjunctive normal form) plus the sink rule and the session rule. ``readers`` counts, per fact
    type, the durable rules with a pattern on that type (the sink, which reads every
    fact, included).
    """

    durable_rules: int
    readers: Mapping[str, int]


def program_load(rules: Iterable[Rule]) -> ProgramLoad:
    """Count the durable rules of a program holding ``rules``, in total and per fact type."""
    total = 2  # the sink, and the session rule (every session runs at least one action)
    readers: dict[str, int] = {SESSION: 1}
    for rule in rules:
        for alternative in alternatives(rule):
            total += 1
            types = {pattern.fact for pattern in alternative.positive}
            if alternative.absent:
                types.add(ABSENT)
            if not alternative.positive and not alternative.absent:
                types.add("patient")  # anchored on the patient fact
            for fact in types:
                readers[fact] = readers.get(fact, 0) + 1
    for fact in readers:
        readers[fact] += 1  # the sink
    return ProgramLoad(durable_rules=total, readers=dict(sorted(readers.items())))


def fact_properties(vocabulary: Mapping[str, Mapping[str, object]] | None = None) -> dict[str, int]:
    """The most properties a fact of each type can carry when asserted (tables add fields)."""
    types = vocabulary if vocabulary is not None else FACT_TYPES
    counts = {fact: len(fields) + len(RESERVED_PROPERTIES) for fact, fields in types.items()}
    counts[ABSENT] = 1 + len(RESERVED_PROPERTIES)  # its one field: the absence key
    return counts
