"""Rule coverage: which rules the scenarios make fire, nearly fire, or never exercise.

For every scenario the case is evaluated by the reference evaluator and every rule
of the ruleset is classified (see :mod:`ketacds.scenarios.explain` for the exact
definition of the checks of an alternative):

* **fired** — the rule is in scope and its condition held;
* **near miss** — it did not fire, but some alternative of its condition with at
  least two checks had exactly one failing; or it is out of scope for the route or
  jurisdiction and would have fired if it applied;
* otherwise the scenario did not exercise it.

A rule is *covered* when at least one scenario made it fire. A near miss shows
that a scenario probes the edge of the rule (the case where it must **not** fire).
A rule whose every alternative has a single check and which applies to every route
and jurisdiction cannot be near-missed; the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ketacds.engine.api import Engine
from ketacds.errors import ProgramRefusedError
from ketacds.ruleset import scope
from ketacds.ruleset.ir import Rule, RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION
from ketacds.ruleset.plan import Alternative, alternatives, flag_name
from ketacds.scenarios.explain import CaseAnalysis
from ketacds.scenarios.model import Scenario
from ketacds.vocabulary import PRIMARY, ROUTES, SECONDARY

__all__ = ["CoverageReport", "RuleCoverage", "measure_coverage"]

#: Confidences whose rules the project's suite must all fire.
REQUIRED_CONFIDENCES = (PRIMARY, SECONDARY)


def _checks(alternative: Alternative) -> int:
    positive = sum(
        1 if flag_name(p) is not None or not p.tests else len(p.tests) for p in alternative.positive
    )
    return positive + len(alternative.absent) + len(alternative.missing_flags)


def near_miss_possible(rule: Rule, ruleset: RuleSet | None = None) -> bool:
    """Whether any case could be a near miss for this rule (see the module docstring).

    With ``ruleset``, a route it refuses in every jurisdiction (ketamine-intranasal) runs no
    rule, so no near miss can be found there: "every route" means every route assessed somewhere.
    """
    routes = set(ROUTES)
    if ruleset is not None:
        routes = {
            route
            for route in ROUTES
            if any(scope.refusal_for(ruleset, route, j.id) is None for j in ruleset.jurisdictions)
        }
    everywhere = set(rule.routes) >= routes and ANY_JURISDICTION in rule.jurisdictions
    return not everywhere or any(_checks(a) >= 2 for a in alternatives(rule))


@attrs.frozen(kw_only=True)
class RuleCoverage:
    """How the scenarios exercise one rule (scenarios are named ``file:line``)."""

    rule_id: str
    title: str
    category: str
    confidence: str
    rule_file: str | None
    rule_line: int | None
    fired_in: tuple[str, ...]
    near_missed_in: tuple[str, ...]
    near_miss_possible: bool

    @property
    def state(self) -> str:
        """``fired``, ``near miss`` or ``not exercised``."""
        if self.fired_in:
            return "fired"
        return "near miss" if self.near_missed_in else "not exercised"


@attrs.frozen(kw_only=True)
class CoverageReport:
    """Rule coverage of a set of scenarios."""

    ruleset: str
    version: str
    digest: str
    scenarios: int
    rules: tuple[RuleCoverage, ...]

    def fired_share(self, confidences: Sequence[str] | None = None) -> tuple[int, int]:
        """(fired, total) over the rules with these confidences (all rules by default)."""
        chosen = [r for r in self.rules if confidences is None or r.confidence in confidences]
        return sum(bool(r.fired_in) for r in chosen), len(chosen)

    def percent(self, confidences: Sequence[str] | None = None) -> float:
        """The share of rules fired by at least one scenario, in percent (100 when there are none)."""
        fired, total = self.fired_share(confidences)
        return 100.0 * fired / total if total else 100.0

    def unfired(self, confidences: Sequence[str] | None = None) -> tuple[RuleCoverage, ...]:
        """The rules no scenario made fire."""
        return tuple(
            r for r in self.rules if not r.fired_in and (confidences is None or r.confidence in confidences)
        )

    def summary(self) -> str:
        """One line: fired shares and near misses."""
        rs_fired, rs_total = self.fired_share(REQUIRED_CONFIDENCES)
        fired, total = self.fired_share()
        near = sum(bool(r.near_missed_in) for r in self.rules)
        return (
            f"{self.scenarios} scenarios · R/S rules fired: {rs_fired}/{rs_total} "
            f"({self.percent(REQUIRED_CONFIDENCES):.0f}%) · all rules fired: {fired}/{total} "
            f"({self.percent():.0f}%) · near-missed: {near}/{total} · "
            f"never exercised: {sum(r.state == 'not exercised' for r in self.rules)}"
        )

    def to_markdown(self) -> str:
        """A Markdown report: summary, then one row per rule."""
        out = [
            f"# Rule coverage: {self.ruleset} {self.version}",
            "",
            f"Ruleset digest `{self.digest}`.",
            "",
            self.summary() + ".",
            "",
            "A rule is **fired** when a scenario made it fire; a **near miss** is a scenario where it did",
            "not fire but some alternative of its condition was one check short (or it was out of scope",
            "and would have fired). See `docs/rule-coverage.md`.",
            "",
            "| rule | confidence | title | state | fired in | near-missed in |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rules:
            near = _places(r.near_missed_in) if r.near_miss_possible else "— (cannot be near-missed)"
            state = f"**{r.state}**" if r.state == "not exercised" else r.state
            out.append(
                f"| `{r.rule_id}` | {r.confidence} | {r.title.replace('|', '/')} | {state} | "
                f"{_places(r.fired_in)} | {near} |"
            )
        return "\n".join(out) + "\n"


def _places(places: Sequence[str], limit: int = 3) -> str:
    if not places:
        return "—"
    shown = ", ".join(f"`{p}`" for p in places[:limit])
    return shown + (f" and {len(places) - limit} more" if len(places) > limit else "")


def measure_coverage(engine: Engine, scenarios: Sequence[Scenario]) -> CoverageReport:
    """Classify every rule of ``engine``'s ruleset against every scenario."""
    fired: dict[str, list[str]] = {rule.id: [] for rule in engine.ruleset.rules}
    near: dict[str, list[str]] = {rule.id: [] for rule in engine.ruleset.rules}
    for scenario in scenarios:
        try:
            analysis = CaseAnalysis(engine, scenario.record, scenario.context)
        except ProgramRefusedError:
            continue  # a refused program runs no rule (the scenario runner reports the refusal)
        for rule in engine.ruleset.rules:
            explanation = analysis.explain(rule.id, depth=0)
            if explanation.fired:
                fired[rule.id].append(scenario.where)
            elif explanation.near_miss:
                near[rule.id].append(scenario.where)
    return CoverageReport(
        ruleset=engine.ruleset.name,
        version=engine.ruleset.version,
        digest=engine.digest,
        scenarios=len(scenarios),
        rules=tuple(
            RuleCoverage(
                rule_id=rule.id,
                title=rule.title,
                category=rule.category,
                confidence=rule.confidence,
                rule_file=rule.file,
                rule_line=rule.line,
                fired_in=tuple(fired[rule.id]),
                near_missed_in=tuple(near[rule.id]),
                near_miss_possible=near_miss_possible(rule, engine.ruleset),
            )
            for rule in engine.ruleset.rules
        ),
    )
