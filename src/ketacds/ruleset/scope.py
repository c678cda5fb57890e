"""Which rules apply to a planned route in a jurisdiction, and whether they cover every safety concept.

An Engine compiles one program per (route, jurisdiction) holding only the rules in
scope; the linter checks every such program. Both ask this module, so that the
scope the linter reasons about is exactly the scope the engine runs.

A program's scope is its jurisdiction, the jurisdictions it lies in (DE within EU),
and, where the manifest says the jurisdiction follows another's label for the route
(CH esketamine follows the EU SmPC), that label's jurisdictions too.

Scoping must never leave a hole (design principle 6): the manifest declares the
safety concepts every program of a route must assess (``concepts``). For each
program, :func:`coverage` says which rules assess each concept, which concepts no
rule in scope assesses, and whether the manifest refuses the program. The Engine
refuses a program that is refused or has a gap (``ProgramRefusedError``); the linter
reports a gap that is not refused as an error (KL050).
"""

from __future__ import annotations

from typing import Literal

import attrs

from ketacds.ruleset.ir import Concept, Follows, Refusal, Rule, RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION

__all__ = ["Coverage", "coverage", "programs", "refusal_for", "required_concepts", "rules_for"]


def _applies(routes: tuple[str, ...], jurisdictions: tuple[str, ...], route: str, scope: set[str]) -> bool:
    """Whether something scoped to ``routes`` and ``jurisdictions`` applies to ``route`` in ``scope``."""
    return route in routes and (ANY_JURISDICTION in jurisdictions or bool(scope & set(jurisdictions)))


def rules_for(ruleset: RuleSet, route: str, jurisdiction: str) -> tuple[Rule, ...]:
    """The rules that apply to ``route`` in ``jurisdiction``: its scope, and the label it follows."""
    scope = set(ruleset.program_scope(route, jurisdiction))
    return tuple(rule for rule in ruleset.rules if _applies(rule.routes, rule.jurisdictions, route, scope))


def programs(ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    """Every (route, jurisdiction) an Engine may compile a program for, in manifest order."""
    return tuple((route, j.id) for route in ruleset.routes for j in ruleset.jurisdictions)


def required_concepts(ruleset: RuleSet, route: str, jurisdiction: str) -> tuple[Concept, ...]:
    """The declared concepts the program for ``route`` in ``jurisdiction`` must assess."""
    scope = set(ruleset.program_scope(route, jurisdiction))
    return tuple(
        concept
        for concept in ruleset.concepts
        if _applies(concept.routes, concept.jurisdictions, route, scope)
    )


def refusal_for(ruleset: RuleSet, route: str, jurisdiction: str) -> Refusal | None:
    """The manifest's refusal of ``route`` in ``jurisdiction`` (exactly, or for every jurisdiction)."""
    for refusal in ruleset.refusals:
        if refusal.route == route and refusal.jurisdiction in (jurisdiction, ANY_JURISDICTION):
            return refusal
    return None


State = Literal["covered", "refused", "gap"]


@attrs.frozen
class Coverage:
    """How one program (route, jurisdiction) stands against the declared safety concepts.

    ``rules`` maps each required concept to the ids of the rules in scope that name it
    (empty: no rule assesses it here); ``missing`` lists those without a rule.
    """

    route: str
    jurisdiction: str
    scope: tuple[str, ...]
    follows: Follows | None
    refusal: Refusal | None
    rules: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """The required concepts no rule in scope assesses."""
        return tuple(concept for concept, ids in self.rules if not ids)

    @property
    def state(self) -> State:
        """``refused`` (declared), ``gap`` (a concept is missing, not declared), or ``covered``."""
        if self.refusal is not None:
            return "refused"
        return "gap" if self.missing else "covered"

    def describe(self) -> str:
        """One sentence for an error: why this program cannot be assessed (empty when it can)."""
        program = f"{self.route} in {self.jurisdiction}"
        missing = f" (no rule for {', '.join(self.missing)})" if self.missing else ""
        if self.refusal is not None:
            return f"the ruleset refuses {program}: {self.refusal.reason}{missing}"
        if self.missing:
            return (
                f"the ruleset does not assess every safety concept for {program}: no rule for "
                f"{', '.join(self.missing)}, and it declares neither a label to follow nor a refusal"
            )
        return ""


def coverage(ruleset: RuleSet, route: str, jurisdiction: str) -> Coverage:
    """Which rules in scope assess each concept the program must assess."""
    scoped = rules_for(ruleset, route, jurisdiction)
    rules = tuple(
        (concept.id, tuple(rule.id for rule in scoped if concept.id in rule.concepts))
        for concept in required_concepts(ruleset, route, jurisdiction)
    )
    return Coverage(
        route=route,
        jurisdiction=jurisdiction,
        scope=ruleset.program_scope(route, jurisdiction),
        follows=ruleset.follows(route, jurisdiction),
        refusal=refusal_for(ruleset, route, jurisdiction),
        rules=rules,
    )
