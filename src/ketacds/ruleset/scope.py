"""Which rules apply to a planned route in a jurisdiction.

An Engine compiles one program per (route, jurisdiction) holding only the rules in
scope; the linter checks every such program. Both ask this module, so that the
scope the linter reasons about is exactly the scope the engine runs.
"""

from __future__ import annotations

from ketacds.ruleset.ir import Rule, RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION

__all__ = ["programs", "rules_for"]


def rules_for(ruleset: RuleSet, route: str, jurisdiction: str) -> tuple[Rule, ...]:
    """The rules that apply to ``route`` in ``jurisdiction`` (and the jurisdictions it lies in)."""
    scope = set(ruleset.jurisdiction_scope(jurisdiction))
    return tuple(
        rule
        for rule in ruleset.rules
        if route in rule.routes
        and (ANY_JURISDICTION in rule.jurisdictions or scope & set(rule.jurisdictions))
    )


def programs(ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    """Every (route, jurisdiction) an Engine may compile a program for, in manifest order."""
    return tuple((route, j.id) for route in ruleset.routes for j in ruleset.jurisdictions)
