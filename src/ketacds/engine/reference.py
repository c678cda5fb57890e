"""The reference evaluator: a small, obviously-correct interpreter of the IR.

It reads each rule's condition tree directly (no normal form, no markers, no
agenda), stratum by stratum, to a fixed point. It is slow and simple on purpose:
it is the oracle that the durable_rules backend is tested against, and it answers
"why / why not" questions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ketacds.engine.match import matches
from ketacds.engine.raw import RawFiring, RawResult, flag_fact
from ketacds.ruleset.ir import All, AnyOf, Condition, Not, Pattern, Rule

__all__ = ["evaluate", "solve"]

Env = dict[str, Mapping[str, Any]]


def solve(
    condition: Condition, env: Env, facts_by_type: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Iterator[Env]:
    """Yield every binding of pattern names to facts under which ``condition`` holds."""
    if isinstance(condition, Pattern):
        # The patterns of one conjunction bind distinct facts (as durable_rules does).
        key = condition.alias or f"#{id(condition)}"
        bound = {id(fact) for fact in env.values()}
        for fact in facts_by_type.get(condition.fact, ()):
            if id(fact) not in bound and matches(condition, fact, env):
                yield {**env, key: fact}
    elif isinstance(condition, All):
        yield from _solve_all(condition.items, env, facts_by_type)
    elif isinstance(condition, AnyOf):
        for item in condition.items:
            yield from solve(item, env, facts_by_type)
    elif isinstance(condition, Not) and next(solve(condition.item, {}, facts_by_type), None) is None:
        # Negation is uncorrelated (the loader refuses references into a 'not'), so it is
        # decided over all facts, whatever the rest of the condition has bound.
        yield env


def _solve_all(
    items: Sequence[Condition], env: Env, facts_by_type: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Iterator[Env]:
    if not items:
        yield env
        return
    for bound in solve(items[0], env, facts_by_type):
        yield from _solve_all(items[1:], bound, facts_by_type)


def evaluate(
    rules: Sequence[Rule], strata: Mapping[str, int], facts: Sequence[Mapping[str, Any]]
) -> RawResult:
    """Run ``rules`` over ``facts`` and return every distinct firing."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for fact in facts:
        by_type.setdefault(fact["t"], []).append(fact)
    by_type.setdefault("flag", [])
    flags: set[str] = set()
    firings: set[RawFiring] = set()
    for stratum in sorted({strata[r.id] for r in rules}):
        layer = [r for r in rules if strata[r.id] == stratum]
        changed = True
        while changed:
            changed = False
            for rule in layer:
                for env in solve(rule.when, {}, by_type):
                    firing = RawFiring(rule.id, tuple(sorted({f["id"] for f in env.values()})))
                    if firing in firings:
                        continue
                    firings.add(firing)
                    for name in rule.flags:
                        if name not in flags:
                            flags.add(name)
                            by_type["flag"].append(flag_fact(name))
                            changed = True
    return RawResult.of(firings)
