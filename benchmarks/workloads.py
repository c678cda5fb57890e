"""Workloads for the benchmarks: synthetic rulesets of any size, and the plain-Python floor.

Nothing here is clinical content. The synthetic rules have the shapes of the bundled
ones (a coded condition, a medication, a reading over a threshold, a join of two
facts, a derived flag read by a later rule, a negation) and use the bundled value
sets, so the synthetic population makes some of them fire; their thresholds and
wording are made up.

The floor evaluates a fixed subset of the bundled rules with plain ``if`` statements
(the constants are read from those rules, so the floor cannot drift from them); the
benchmark checks that it fires exactly what durable_rules fires for that subset, on
every patient, before it is timed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from ketacds.ruleset.ir import All, Evidence, FindingSpec, Not, Pattern, Rule, RuleSet, Test

# ------------------------------------------------------------ synthetic rulesets


def _member(valueset: str) -> Test:
    return Test("vs", "member", (valueset,))


def synthetic_rules(ruleset: RuleSet, count: int, *, seed: int = 8) -> tuple[Rule, ...]:
    """``count`` rules shaped like the bundled ones, over the bundled value sets."""
    rng = random.Random(seed)
    by_fact: dict[str, list[str]] = {"condition": [], "medication": [], "observation": []}
    for rule in ruleset.rules:
        stack: list[Any] = [rule.when]
        while stack:
            node = stack.pop()
            if isinstance(node, Pattern):
                for test in node.tests:
                    if test.op == "member" and node.fact in by_fact:
                        by_fact[node.fact].extend(str(v) for v in test.value)  # type: ignore[union-attr]
            elif isinstance(node, Not):
                stack.append(node.item)
            elif hasattr(node, "items"):
                stack.extend(node.items)
    pools = {fact: sorted(set(ids)) for fact, ids in by_fact.items()}
    severity = next(
        severity for severity, status in ruleset.status.severities if status != ruleset.status.default
    )
    source = ruleset.sources[0].id
    rules = []
    for number in range(count):
        shape = number % 6
        condition = Pattern(
            "condition", (_member(rng.choice(pools["condition"])), Test("active", "eq", True))
        )
        medication = Pattern(
            "medication", (_member(rng.choice(pools["medication"])), Test("active", "eq", True))
        )
        reading = Pattern(
            "observation",
            (
                _member(rng.choice(pools["observation"])),
                Test("latest", "eq", True),
                Test("value", "gt", Decimal(rng.randint(5, 160))),
            ),
        )
        flags: tuple[str, ...] = ()
        finding: FindingSpec | None = FindingSpec(message=f"Synthetic finding {number}.")
        when: Any
        if shape == 0:
            when = condition
        elif shape == 1:
            when = medication
        elif shape == 2:
            when = reading
        elif shape == 3:
            when = All((Pattern("patient", (Test("age_years", "gte", rng.randint(18, 80)),)), condition))
        elif shape == 4:  # a derivation, read by the next rule
            when, flags, finding = medication, (f"synthetic-{number}",), None
        else:
            when = All((Pattern("flag", (Test("name", "eq", f"synthetic-{number - 1}"),)), Not(condition)))
        rules.append(
            Rule(
                id=f"KCDS-SYN-{number:03d}",
                title=f"Synthetic rule {number}",
                category="derivation" if finding is None else "contraindication",
                severity=severity,
                routes=tuple(ruleset.routes),
                jurisdictions=("any",),
                when=when,
                confidence="R",
                evidence=(Evidence(source),),
                rationale="Synthetic, for measuring how cost grows with the number of rules.",
                finding=finding,
                flags=flags,
            )
        )
    return tuple(rules)


def with_rules(ruleset: RuleSet, rules: Sequence[Rule]) -> RuleSet:
    """The bundled ruleset (value sets, sources, status table) with other rules."""
    return attrs.evolve(ruleset, rules=tuple(rules))


# -------------------------------------------------------------- the plain floor

#: The rules the plain-Python floor evaluates (all apply to IV ketamine, everywhere).
FLOOR_RULES = (
    "KCDS-CAND-013",
    "KCDS-CAND-014",
    "KCDS-CAND-018",
    "KCDS-CAND-019",
    "KCDS-CAND-020",
    "KCDS-CAND-021",
    "KCDS-CAND-022",
    "KCDS-CI-005",
    "KCDS-CI-006",
    "KCDS-CI-008",
    "KCDS-CI-017",
    "KCDS-CI-021",
    "KCDS-DOSE-001",
    "KCDS-DOSE-003",
    "KCDS-DOSE-004",
)


def _tests(ruleset: RuleSet, rule_id: str) -> dict[tuple[str, str], Any]:
    """The (field, op) → operand of a single-pattern rule, with the value set as ('vs', 'member')."""
    when = ruleset.rule(rule_id).when
    assert isinstance(when, Pattern), rule_id
    tests = {(t.field, t.op): t.value for t in when.tests}
    if ("vs", "member") in tests:
        (tests["vs", "member"],) = tests["vs", "member"]
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in tests.items()}


class PlainFloor:
    """:data:`FLOOR_RULES`, hand-written as plain ifs over the same facts."""

    def __init__(self, ruleset: RuleSet) -> None:
        t = {rule_id: _tests(ruleset, rule_id) for rule_id in FLOOR_RULES}
        self.ptsd = t["KCDS-CAND-013"]["vs", "member"]
        self.ocd = t["KCDS-CAND-014"]["vs", "member"]
        self.minor = t["KCDS-CAND-018"]["age_years", "lt"]
        self.phq9 = t["KCDS-CAND-019"]["vs", "member"]
        self.phq_severe = t["KCDS-CAND-019"]["value", "gte"]
        self.phq_moderate = t["KCDS-CAND-020"]["value", "gte"]
        self.phq_mild = t["KCDS-CAND-021"]["value", "gte"]
        self.aneurysm = t["KCDS-CI-005"]["vs", "member"]
        self.allergy = t["KCDS-CI-006"]["vs", "member"]
        self.icp = t["KCDS-CI-008"]["vs", "member"]
        self.cardio = t["KCDS-CI-017"]["vs", "member"]
        self.mania = t["KCDS-CI-021"]["vs", "member"]
        self.over = t["KCDS-DOSE-003"]["dose_mg_per_kg", "gt"]
        self.far_over = t["KCDS-DOSE-004"]["dose_mg_per_kg", "gt"]

    def fire(self, facts: Sequence[Mapping[str, Any]]) -> set[tuple[str, tuple[str, ...]]]:
        fired: set[tuple[str, tuple[str, ...]]] = set()
        add = fired.add
        for f in facts:
            kind = f["t"]
            ids = (f["id"],)
            if kind == "condition":
                if f["active"]:
                    vs = f["vs"]
                    if self.ptsd in vs:
                        add(("KCDS-CAND-013", ids))
                    if self.ocd in vs:
                        add(("KCDS-CAND-014", ids))
                    if self.aneurysm in vs:
                        add(("KCDS-CI-005", ids))
                    if self.icp in vs:
                        add(("KCDS-CI-008", ids))
                    if self.cardio in vs:
                        add(("KCDS-CI-017", ids))
                    if self.mania in vs:
                        add(("KCDS-CI-021", ids))
            elif kind == "observation":
                if f["latest"] and self.phq9 in f["vs"]:
                    value = f["value"]
                    if value >= self.phq_severe:
                        add(("KCDS-CAND-019", ids))
                    elif value >= self.phq_moderate:
                        add(("KCDS-CAND-020", ids))
                    elif value >= self.phq_mild:
                        add(("KCDS-CAND-021", ids))
                    else:
                        add(("KCDS-CAND-022", ids))
            elif kind == "patient":
                if "weight_kg" in f:
                    add(("KCDS-DOSE-001", ids))
                if "age_years" in f and f["age_years"] < self.minor:
                    add(("KCDS-CAND-018", ids))
            elif kind == "plan":
                per_kg = f.get("dose_mg_per_kg")
                if per_kg is not None and per_kg > self.over:
                    add(("KCDS-DOSE-003", ids))
                    if per_kg > self.far_over:
                        add(("KCDS-DOSE-004", ids))
            elif kind == "allergy" and f["active"] and self.allergy in f["vs"]:
                add(("KCDS-CI-006", ids))
        return fired
