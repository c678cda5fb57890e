"""Counts of rules by category, route, jurisdiction and confidence (for docs/rule-counts.md)."""

from __future__ import annotations

from collections import Counter

from ketacds.ruleset.ir import RuleSet
from ketacds.vocabulary import CONFIDENCES

__all__ = ["rule_counts_markdown"]


def _table(title: str, header: str, counts: Counter[str], order: list[str]) -> list[str]:
    lines = [f"## {title}", "", f"| {header} | rules |", "|---|---:|"]
    lines += [f"| {key} | {counts[key]} |" for key in order if counts[key]]
    return [*lines, ""]


def rule_counts_markdown(ruleset: RuleSet) -> str:
    """A Markdown page counting the rules; rules scoped to several values count under each."""
    rules = ruleset.rules
    categories = Counter(rule.category for rule in rules)
    routes = Counter(route for rule in rules for route in rule.routes)
    jurisdictions = Counter(j for rule in rules for j in rule.jurisdictions)
    confidence: Counter[str] = Counter(str(rule.confidence) for rule in rules)
    matrix = Counter((rule.category, route) for rule in rules for route in rule.routes)
    lines = [
        "# Rule counts",
        "",
        f"Generated from ruleset {ruleset.name} {ruleset.version} (digest `{ruleset.digest[:16]}…`): "
        f"{len(rules)} rules. Regenerate with `make golden`; a test fails when this page is stale.",
        "",
    ]
    lines += _table("By category", "category", categories, sorted(categories))
    lines += _table("By route", "route", routes, list(ruleset.routes))
    j_order = ["any", *(j.id for j in ruleset.jurisdictions)]
    lines += _table(
        "By jurisdiction (`any`: wherever the engine is used)", "jurisdiction", jurisdictions, j_order
    )
    lines += _table("By confidence (M: advisory only)", "confidence", confidence, list(CONFIDENCES))
    lines += ["## Category × route", "", "| category | " + " | ".join(ruleset.routes) + " |"]
    lines.append("|---|" + "---:|" * len(ruleset.routes))
    for category in sorted(categories):
        cells = " | ".join(str(matrix[(category, route)]) for route in ruleset.routes)
        lines.append(f"| {category} | {cells} |")
    return "\n".join(lines) + "\n"
