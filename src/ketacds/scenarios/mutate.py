"""Rule mutation testing: would the scenarios notice if a rule were subtly wrong?

Each *mutant* is the ruleset with one small change to one rule, built with
:func:`attrs.evolve` on the frozen intermediate form. The operators:

``threshold-up`` / ``threshold-down``
    a number a field is compared with moves by one unit of its last written digit
    (140 → 141 and 139; 0.5 → 0.6 and 0.4);
``boundary``
    a strict comparison becomes inclusive or the reverse (above 140 → 140 or more);
``flip``
    a yes/no test is reversed (is active → is not active; recorded → not recorded);
``drop-value``
    one value leaves a list (response is none or partial → none; one of two value sets);
``drop-test``
    one field test of a pattern is removed;
``drop-condition``
    one item of an ``all`` or ``any`` is removed (never one whose name a later item uses);
``severity-up`` / ``severity-down``
    the rule's severity moves to the next more / less serious status level;
``scope-narrow`` / ``scope-widen``
    one route or jurisdiction is removed; or the rule is made to apply to every route,
    or in every jurisdiction.

A mutant is **killed** when at least one scenario that passes on the real rules fails
on the mutant. Scenarios run on the reference evaluator, and only those for which the
mutated rule is in scope (before or after the change): for the others nothing changed.
A surviving mutant is a change to the rules that no scenario would catch: either a
scenario is missing, or the change makes no clinical difference (an *equivalent*
mutant), which only a person can judge.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any

import attrs

from ketacds.engine.api import REFERENCE_ENGINE_NAME, Engine
from ketacds.engine.assemble import Assembler
from ketacds.engine.facts import FactSet
from ketacds.engine.raw import RawResult, flag_fact
from ketacds.engine.reference import evaluate
from ketacds.errors import KetacdsError, RulesetError
from ketacds.models.inputs import ROUTES
from ketacds.ruleset.ir import All, Condition, Not, Op, Pattern, Ref, Rule, RuleSet, Test
from ketacds.ruleset.load import ANY_JURISDICTION
from ketacds.ruleset.plan import alternatives, flag_name, flags_read, stratify
from ketacds.scenarios.check import compare, validate
from ketacds.scenarios.model import Scenario
from ketacds.scenarios.words import Vocabulary

__all__ = ["OPERATORS", "Mutant", "MutantResult", "MutationReport", "mutants", "run_mutation"]

OPERATORS = (
    "threshold-up",
    "threshold-down",
    "boundary",
    "flip",
    "drop-value",
    "drop-test",
    "drop-condition",
    "severity-up",
    "severity-down",
    "scope-narrow",
    "scope-widen",
)

_BOUNDARY: dict[str, Op] = {"gt": "gte", "gte": "gt", "lt": "lte", "lte": "lt"}


@attrs.frozen(kw_only=True)
class Mutant:
    """One rule, changed in one small way."""

    rule_id: str
    operator: str
    description: str
    rule: Rule = attrs.field(eq=False, repr=False)

    @property
    def key(self) -> str:
        """A stable identity (for sampling and reports)."""
        return f"{self.rule_id} {self.operator} {self.description}"


def _step(value: int | Decimal) -> int | Decimal:
    if isinstance(value, int):
        return 1
    exponent = value.as_tuple().exponent
    return Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)


def _test_variants(test: Test, words: Vocabulary) -> Iterator[tuple[str, Test, str]]:
    """(operator, changed test, description) for one field test."""
    before = words.test(test)
    value = test.value
    numeric = isinstance(value, int | Decimal) and not isinstance(value, bool)
    if numeric and test.op in ("gt", "gte", "lt", "lte", "eq", "ne"):
        assert isinstance(value, int | Decimal)
        step = _step(value)
        for operator, moved in (("threshold-up", value + step), ("threshold-down", value - step)):
            changed = attrs.evolve(test, value=moved)
            yield operator, changed, f"{before} → {words.test(changed)}"
    if test.op in _BOUNDARY and not isinstance(value, Ref):
        changed = attrs.evolve(test, op=_BOUNDARY[test.op])
        yield "boundary", changed, f"{before} → {words.test(changed)}"
    if isinstance(value, bool) and test.op in ("eq", "ne", "present"):
        changed = attrs.evolve(test, value=not value)
        yield "flip", changed, f"{before} → {words.test(changed)}"
    if isinstance(value, tuple) and len(value) > 1:  # in, member, and any other list operator
        for index in range(len(value)):
            changed = attrs.evolve(test, value=value[:index] + value[index + 1 :])
            yield "drop-value", changed, f"{before} → {words.test(changed)}"


def _refs(condition: Condition) -> set[str]:
    if isinstance(condition, Pattern):
        return {t.value.alias for t in condition.tests if isinstance(t.value, Ref)}
    if isinstance(condition, Not):
        return _refs(condition.item)
    return set().union(*(_refs(item) for item in condition.items))


def _aliases(condition: Condition) -> set[str]:
    if isinstance(condition, Pattern):
        return {condition.alias} if condition.alias else set()
    if isinstance(condition, Not):
        return set()
    return set().union(*(_aliases(item) for item in condition.items))


def _condition_variants(
    condition: Condition, words: Vocabulary, where: str = ""
) -> Iterator[tuple[str, Condition, str]]:
    """(operator, changed condition, description) for every small change inside ``condition``.

    ``where`` names the part of the rule being changed when the rule has several
    (``in ‘first’: ``, ``in item 2: ``), so that two mutants never read the same.
    """
    if isinstance(condition, Pattern):
        if flag_name(condition) is not None:
            return
        where = f"in ‘{condition.alias}’: " if condition.alias else where
        for index, test in enumerate(condition.tests):
            for operator, new_test, description in _test_variants(test, words):
                tests = (*condition.tests[:index], new_test, *condition.tests[index + 1 :])
                yield operator, attrs.evolve(condition, tests=tests), where + description
            dropped = condition.tests[:index] + condition.tests[index + 1 :]
            yield "drop-test", attrs.evolve(condition, tests=dropped), f"{where}dropped “{words.test(test)}”"
        return
    if isinstance(condition, Not):
        for operator, changed, description in _condition_variants(condition.item, words, where):
            yield operator, Not(changed), description
        return
    items = condition.items
    for index, item in enumerate(items):
        inner = f"{where.removesuffix(': ')}, item {index + 1}: " if where else f"in item {index + 1}: "
        for operator, new_item, description in _condition_variants(item, words, inner):
            yield operator, type(condition)((*items[:index], new_item, *items[index + 1 :])), description
        rest = items[:index] + items[index + 1 :]
        if rest and not (_aliases(item) & set().union(*(_refs(other) for other in rest))):
            kept: Condition = rest[0] if len(rest) == 1 else type(condition)(rest)
            yield "drop-condition", kept, f"{where}dropped “{_describe(item, words)}”"


def _describe(condition: Condition, words: Vocabulary) -> str:
    if isinstance(condition, Pattern):
        return words.pattern(condition)
    if isinstance(condition, Not):
        inner = condition.item
        return (
            words.absent(inner)
            if isinstance(inner, Pattern) and flag_name(inner) is None
            else (f"not ({_describe(inner, words)})")
        )
    joiner = " and " if isinstance(condition, All) else " or "
    return joiner.join(_describe(item, words) for item in condition.items)


def _severity_variants(rule: Rule, ruleset: RuleSet) -> Iterator[tuple[str, str]]:
    if rule.finding is None:
        return
    table = ruleset.status
    level_of = dict(table.severities)
    rank = table.rank(level_of[rule.severity])
    by_rank: dict[int, str] = {}
    for severity, level in sorted(table.severities):
        by_rank.setdefault(table.rank(level), severity)
    above = [r for r in by_rank if r < rank]
    below = [r for r in by_rank if r > rank]
    if above:
        yield "severity-up", by_rank[max(above)]
    if below:
        yield "severity-down", by_rank[min(below)]


def mutants(ruleset: RuleSet) -> list[Mutant]:
    """Every mutant of every rule, in rule order."""
    words = Vocabulary(ruleset)
    out: list[Mutant] = []
    for rule in ruleset.rules:

        def add(operator: str, description: str, rule: Rule = rule, **changes: Any) -> None:
            changed = attrs.evolve(rule, **changes)
            out.append(Mutant(rule_id=rule.id, operator=operator, description=description, rule=changed))

        for operator, when, description in _condition_variants(rule.when, words):
            add(operator, description, when=when)
        for operator, severity in _severity_variants(rule, ruleset):
            add(operator, f"severity {rule.severity} → {severity}", severity=severity)
        if len(rule.routes) > 1:
            for route in rule.routes:
                kept = tuple(r for r in rule.routes if r != route)
                add("scope-narrow", f"no longer applies to {route}", routes=kept)
        if set(rule.routes) != set(ROUTES):
            add("scope-widen", "applies to every route", routes=tuple(ROUTES))
        if ANY_JURISDICTION not in rule.jurisdictions:
            if len(rule.jurisdictions) > 1:
                for jurisdiction in rule.jurisdictions:
                    kept = tuple(j for j in rule.jurisdictions if j != jurisdiction)
                    add("scope-narrow", f"no longer applies in {jurisdiction}", jurisdictions=kept)
            add("scope-widen", "applies in every jurisdiction", jurisdictions=(ANY_JURISDICTION,))
    return out


@attrs.frozen(kw_only=True)
class MutantResult:
    """What the scenarios did to one mutant."""

    mutant: Mutant
    killed: bool
    killed_by: str | None = None
    invalid: str | None = None
    scenarios_run: int = 0


@attrs.frozen(kw_only=True)
class MutationReport:
    """Mutation testing of a ruleset by a set of scenarios."""

    ruleset: str
    version: str
    results: tuple[MutantResult, ...]
    rule_files: dict[str, str] = attrs.field(eq=False)
    rule_lines: dict[str, int | None] = attrs.field(eq=False)
    total_mutants: int
    scenarios: int
    baseline_failures: tuple[str, ...]
    seconds: float

    @property
    def valid(self) -> tuple[MutantResult, ...]:
        """The mutants that are well-formed rulesets."""
        return tuple(r for r in self.results if r.invalid is None)

    @property
    def survivors(self) -> tuple[MutantResult, ...]:
        """The mutants no scenario caught."""
        return tuple(r for r in self.valid if not r.killed)

    def score(self) -> float:
        """Killed ÷ valid mutants, in percent (100 when there are none)."""
        valid = self.valid
        return 100.0 * sum(r.killed for r in valid) / len(valid) if valid else 100.0

    def by_file(self) -> list[tuple[str, int, int]]:
        """(rule file, mutants, killed) per ruleset file."""
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for result in self.valid:
            entry = counts[self.rule_files.get(result.mutant.rule_id, "?")]
            entry[0] += 1
            entry[1] += result.killed
        return [(name, total, killed) for name, (total, killed) in sorted(counts.items())]

    def summary(self) -> str:
        """One line: score, counts and time."""
        valid = self.valid
        sampled = (
            f" (a sample of {len(self.results)} of {self.total_mutants})"
            if len(self.results) < self.total_mutants
            else ""
        )
        killed = sum(r.killed for r in valid)
        return (
            f"mutation score {self.score():.1f}%: {killed} of {len(valid)} mutants killed{sampled}, "
            f"{len(self.survivors)} survived, by {self.scenarios} scenarios in {self.seconds:.1f} s"
        )

    def where(self, rule_id: str) -> str:
        """``file:line`` of a rule."""
        return f"{self.rule_files.get(rule_id, '?')}:{self.rule_lines.get(rule_id) or '?'}"

    def to_markdown(self) -> str:
        """A Markdown report: score per ruleset file, then every surviving mutant."""
        out = [
            f"# Rule mutation testing: {self.ruleset} {self.version}",
            "",
            self.summary() + ".",
            "",
            "| ruleset file | mutants | killed | survived | score |",
            "|---|---|---|---|---|",
        ]
        for name, total, killed in self.by_file():
            out.append(f"| `{name}` | {total} | {killed} | {total - killed} | {100 * killed / total:.0f}% |")
        if self.baseline_failures:
            out += ["", "Scenarios left out because they fail on the real rules:", ""]
            out += [f"- `{where}`" for where in self.baseline_failures]
        out += ["", "## Surviving mutants", ""]
        if not self.survivors:
            out.append("None: every mutant was caught by a scenario.")
        else:
            out += [
                "Each line is a change to a rule that no scenario notices. Add a scenario that",
                "tells the two apart, or record why the change makes no clinical difference.",
                "",
                "| rule | where | operator | change |",
                "|---|---|---|---|",
            ]
            for r in self.survivors:
                m = r.mutant
                change = m.description.replace("|", "/")
                out.append(f"| `{m.rule_id}` | `{self.where(m.rule_id)}` | {m.operator} | {change} |")
        invalid = [r for r in self.results if r.invalid is not None]
        if invalid:
            out += ["", f"{len(invalid)} mutant(s) were not well-formed rulesets and were skipped."]
        return "\n".join(out) + "\n"


def _in_scope(rule: Rule, route: str, scope: AbstractSet[str]) -> bool:
    return route in rule.routes and (
        ANY_JURISDICTION in rule.jurisdictions or bool(scope & set(rule.jurisdictions))
    )


def _sample(found: list[Mutant], limit: int | None) -> list[Mutant]:
    if limit is None or limit >= len(found):
        return found
    ranked = sorted(found, key=lambda m: hashlib.sha256(m.key.encode()).hexdigest())
    chosen = {m.key for m in ranked[:limit]}
    return [m for m in found if m.key in chosen]


@attrs.frozen
class _Baseline:
    """One scenario on the real rules: its facts and firings, computed once for all mutants."""

    scenario: Scenario
    facts: FactSet
    scope: frozenset[str]
    raw: RawResult
    fired: frozenset[str]


def run_mutation(
    engine: Engine,
    scenarios: Sequence[Scenario],
    *,
    max_mutants: int | None = None,
    rule_ids: Sequence[str] | None = None,
    operators: Sequence[str] | None = None,
) -> MutationReport:
    """Build the mutants of ``engine``'s ruleset and run the scenarios against each.

    Args:
        engine: the real rules.
        scenarios: the suite; those failing on the real rules are left out.
        max_mutants: run a reproducible sample of at most this many mutants.
        rule_ids: only mutate these rules.
        operators: only use these operators (see :data:`OPERATORS`).
    """
    started = time.perf_counter()
    ruleset = engine.ruleset
    baselines: list[_Baseline] = []
    failing: list[str] = []
    for scenario in scenarios:
        try:
            validate(scenario, ruleset)
            facts, raw = engine.evaluate(scenario.record, scenario.context, backend="reference")
            assessment = engine.assess(scenario.record, scenario.context, backend="reference")
        except KetacdsError:
            failing.append(scenario.where)
            continue
        if compare(scenario, assessment, ruleset):
            failing.append(scenario.where)
            continue
        scope = frozenset(ruleset.program_scope(scenario.context.route, scenario.context.jurisdiction))
        fired = frozenset(firing.rule_id for firing in raw.firings)
        baselines.append(_Baseline(scenario=scenario, facts=facts, scope=scope, raw=raw, fired=fired))
    found = [
        m
        for m in mutants(ruleset)
        if (rule_ids is None or m.rule_id in rule_ids) and (operators is None or m.operator in operators)
    ]
    reads = {rule.id: set().union(*flags_read(rule)) for rule in ruleset.rules}
    results = [_run_one(engine, mutant, baselines, reads) for mutant in _sample(found, max_mutants)]
    return MutationReport(
        ruleset=ruleset.name,
        version=ruleset.version,
        results=tuple(results),
        rule_files={rule.id: rule.file or "?" for rule in ruleset.rules},
        rule_lines={rule.id: rule.line for rule in ruleset.rules},
        total_mutants=len(found),
        scenarios=len(baselines),
        baseline_failures=tuple(failing),
        seconds=time.perf_counter() - started,
    )


def _cone(rule_id: str, rules: Sequence[Rule], reads: Mapping[str, set[str]]) -> set[str]:
    """The rule and every rule that reads, directly or through others, a flag it derives."""
    flags = {rule.id: set(rule.flags) for rule in rules}
    cone, frontier = {rule_id}, {rule_id}
    while frontier:
        derived = set().union(*(flags[r] for r in frontier))
        frontier = {r for r, read in reads.items() if read & derived} - cone
        cone |= frontier
    return cone


def _run_one(
    engine: Engine, mutant: Mutant, baselines: Sequence[_Baseline], base_reads: Mapping[str, set[str]]
) -> MutantResult:
    """Run the scenarios on one mutant, re-evaluating only what the change can reach.

    Rules outside the mutated rule's cone fire as on the real rules (nothing they read
    changed), so each scenario re-evaluates only the cone, with the flags the other rules
    derived; an Assessment is built only when the firings, or the mutated rule's own
    finding, differ from the real rules'. A test checks this against full re-evaluation.
    """
    ruleset = engine.ruleset
    original = ruleset.rule(mutant.rule_id)
    rules = tuple(mutant.rule if rule.id == mutant.rule_id else rule for rule in ruleset.rules)
    try:
        alternatives(mutant.rule)
        strata = stratify(rules)
        reads = {**base_reads, mutant.rule_id: set().union(*flags_read(mutant.rule))}
    except RulesetError as error:
        return MutantResult(mutant=mutant, killed=False, invalid=error.reason)
    changed = attrs.evolve(ruleset, rules=rules)
    cone = _cone(mutant.rule_id, rules, reads)
    own_finding_changed = mutant.rule.severity != original.severity
    by_id = {rule.id: rule for rule in rules}
    scoped: dict[tuple[str, frozenset[str]], list[Rule]] = {}
    assemblers: dict[tuple[tuple[str, frozenset[str]], str], Assembler] = {}
    run = 0
    for base in baselines:
        context = base.scenario.context
        if not (
            _in_scope(original, context.route, base.scope)
            or _in_scope(mutant.rule, context.route, base.scope)
        ):
            continue
        run += 1
        key = (context.route, base.scope)
        if key not in scoped:
            scoped[key] = [rule for rule in rules if _in_scope(rule, context.route, base.scope)]
        in_scope = scoped[key]
        kept = {firing for firing in base.raw.firings if firing.rule_id not in cone}
        seeded = sorted({flag for firing in kept for flag in by_id[firing.rule_id].flags})
        facts = [*base.facts.facts, *(flag_fact(name) for name in seeded)]
        try:
            firings = kept | set(evaluate([r for r in in_scope if r.id in cone], strata, facts).firings)
            if firings == set(base.raw.firings) and not (
                own_finding_changed and mutant.rule_id in base.fired
            ):
                continue  # the same answer as on the real rules, where this scenario passes
            assembler = assemblers.get((key, context.jurisdiction))
            if assembler is None:
                assembler = assemblers[(key, context.jurisdiction)] = Assembler(
                    ruleset=changed,
                    digest=engine.digest,  # provenance only: a digest per mutant would cost more than the run
                    rules=in_scope,
                    engine=REFERENCE_ENGINE_NAME,
                    jurisdiction=context.jurisdiction,
                    route=context.route,
                )
            assessment = assembler.assemble(base.facts, RawResult.of(firings), context)
        except KetacdsError:
            return MutantResult(mutant=mutant, killed=True, killed_by=base.scenario.where, scenarios_run=run)
        if compare(base.scenario, assessment, changed):
            return MutantResult(mutant=mutant, killed=True, killed_by=base.scenario.where, scenarios_run=run)
    return MutantResult(mutant=mutant, killed=False, scenarios_run=run)
