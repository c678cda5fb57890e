"""Activations of the durable_rules backend: the compiled alternatives, and what an activation says.

durable_rules reports each activation as the JSON of the matched facts under the durable
rule's name and aliases: ``{"RULE#n":{"alias":{"id":"3",...},"alias2":{"id":"flag:x",...}}}``.
Our facts' JSON starts with ``id`` and durable echoes it verbatim, so the ids are read
from the text (:func:`parse_activation`) rather than by a JSON parse (the fallback for
any other shape).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence

from ketacds.ruleset.ir import Rule, Test

__all__ = ["Alternative", "Prepared", "parse_activation"]

# In an activation, what lies between an alias and its fact's id.
_BOUND = '":{"id":"'


class Alternative:
    """A compiled alternative: which durable aliases are ours to report, and the guards."""

    __slots__ = (
        "flags",
        "index",
        "joins",
        "missing_flags",
        "number",
        "pattern_count",
        "report_aliases",
        "rule",
        "rule_aliases",
        "rule_id",
        "types",
    )

    def __init__(
        self,
        rule: Rule,
        index: int,
        report_aliases: Sequence[str],
        pattern_count: int,
        types: Sequence[str],
        missing_flags: Sequence[str],
        joins: Sequence[tuple[str, str | None, tuple[Test, ...]]],
    ) -> None:
        self.rule = rule
        self.rule_id = rule.id
        self.flags = rule.flags
        self.index = index
        self.report_aliases = tuple(report_aliases)  # durable aliases of the positive patterns
        self.pattern_count = pattern_count  # every durable alias, markers and anchor included
        self.types = tuple(types)  # the fact type each durable pattern reads
        self.missing_flags = tuple(missing_flags)
        # (durable alias, rule alias, tests comparing with earlier facts), checked when firing
        self.joins = tuple(j for j in joins if j[2])
        self.rule_aliases = {rule_alias: durable for durable, rule_alias, _ in joins if rule_alias}
        self.number = 0  # its index among the program's alternatives


# What an activation means (DurableProgram._prepare): the alternative (its index in
# DurableProgram._alternative_list), whether it has guards,
# the one fact it reports (or None), every fact it reports, and the facts by durable alias.
Prepared = tuple[int, bool, "int | str | None", tuple["int | str", ...], dict[str, "int | str"]]


def parse_activation(
    message: str, alternatives: Mapping[str, Alternative]
) -> tuple[Alternative, dict[str, str]]:
    """The alternative an activation is for, and the durable fact id bound to each alias."""
    # Cut where each alias's fact begins: an alias ends each piece, a fact id starts the next.
    pieces = message.split(_BOUND)
    head = pieces[0]
    alt = alternatives.get(head[2 : head.find('"', 2)]) if head.startswith('{"') else None
    if alt is not None and len(pieces) == alt.pattern_count + 1:
        bound = {}
        for before, after in itertools.pairwise(pieces):
            end = after.find('"')
            if end < 0:
                break
            bound[before[before.rfind('"') + 1 :]] = after[:end]
        if len(bound) == alt.pattern_count:
            return alt, bound
    # Not the shape we expect: read it as JSON (slower, but exact).
    ((name, facts),) = json.loads(message).items()
    return alternatives[name], {alias: str(fact["id"]) for alias, fact in facts.items()}
