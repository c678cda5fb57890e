"""Why a rule fired, or why it did not: "why / why not" over the intermediate form.

Built on the reference evaluator (:mod:`ketacds.engine.reference`): the case is
evaluated once, then each rule's condition, in disjunctive normal form
(:func:`ketacds.ruleset.plan.alternatives`, the same form the durable_rules backend
compiles), is matched against the facts one elementary condition at a time.

The elementary conditions (*checks*) of one alternative are:

* each field test of each positive pattern over input facts (a pattern without
  tests counts once: "a fact of this type is recorded");
* each positive flag pattern ("the flag has been derived");
* each negated pattern ("no such fact is recorded") and each negated flag.

For every alternative the analysis picks the assignment of facts to its positive
patterns (a different fact for each, as in durable_rules) with the fewest failing
checks (ties go to the first in fact order). A rule
**fired** when some alternative has none failing. It is a **near miss** when it did
not fire but some alternative of at least two checks has exactly one failing — or
when the rule is out of scope for the route or jurisdiction but would fire if it
applied. ``docs/explain.md`` describes the output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ketacds.engine.api import Engine
from ketacds.engine.facts import FactSet
from ketacds.engine.match import matches, passes
from ketacds.engine.raw import RawResult, flag_fact, flag_id
from ketacds.engine.reference import evaluate
from ketacds.errors import InputError
from ketacds.models.facts import FLAG
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.results import EvidenceRef, FactRef
from ketacds.ruleset.ir import Pattern, Ref, Rule
from ketacds.ruleset.plan import Alternative, alternatives, flag_name
from ketacds.scenarios.words import Vocabulary, fact_noun
from ketacds.yamldoc import suggest

__all__ = ["CaseAnalysis", "Check", "Explanation", "Match", "explain"]

Verdict = Literal["fired", "not-fired", "out-of-scope"]
Fact = Mapping[str, Any]

# At most this many exact matches are listed for a rule that fired.
_MAX_MATCHES = 10


@attrs.frozen(kw_only=True)
class Check:
    """One elementary condition of a rule, judged on the facts.

    Attributes:
        needs: what the rule needs, in words (``value above 140``).
        held: whether the facts meet it.
        found: what the facts say instead (``value is 138 mmHg``), or who derived a flag.
        missing: the datum whose absence made the check fail, when that is the reason.
        because: for flags, the rules behind them (why derived, or why not).
    """

    needs: str
    held: bool
    found: str | None = None
    missing: str | None = None
    because: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Match:
    """The facts chosen for one alternative of a rule's condition, and every check on them."""

    alternative: int
    facts: tuple[FactRef, ...]
    checks: tuple[Check, ...]

    @property
    def failing(self) -> tuple[Check, ...]:
        """The checks that did not hold."""
        return tuple(c for c in self.checks if not c.held)


@attrs.frozen(kw_only=True)
class Explanation:
    """Why one rule fired or did not, for one case.

    ``matches`` holds, for a rule that fired, each way its condition was met; otherwise
    the closest match of each alternative. ``conditions`` states each alternative in
    words. ``scope`` says why the rule does not apply to the route or jurisdiction.

    .. versionadded:: 0.1.0
    """

    rule_id: str
    title: str
    category: str
    severity: str
    confidence: str
    rule_file: str | None
    rule_line: int | None
    message: str | None
    management: str | None
    evidence: tuple[EvidenceRef, ...]
    route: str
    jurisdiction: str
    verdict: Verdict
    conditions: tuple[str, ...]
    matches: tuple[Match, ...]
    near_miss: bool
    scope: str | None = None
    would_fire: bool = False

    @property
    def fired(self) -> bool:
        """Whether the rule fired."""
        return self.verdict == "fired"

    @property
    def where(self) -> str:
        """``file:line`` of the rule."""
        return f"{self.rule_file}:{self.rule_line}" if self.rule_file else "(unknown file)"

    @property
    def missing_data(self) -> tuple[str, ...]:
        """The data whose absence keeps the closest alternative from holding."""
        best = self.closest
        return tuple(dict.fromkeys(c.missing for c in best.failing if c.missing)) if best else ()

    @property
    def closest(self) -> Match | None:
        """The match with the fewest failing checks (the first on ties)."""
        return min(self.matches, key=lambda m: len(m.failing), default=None)

    def reason(self) -> str:
        """One line: what it fired on, or the first thing that stopped it."""
        if self.verdict == "out-of-scope":
            tail = "; on these facts it would fire if it applied" if self.would_fire else ""
            return f"{self.scope}{tail}"
        best = self.closest
        if self.fired:
            facts = "; ".join(f.label for f in best.facts) if best and best.facts else "the patient record"
            return f"it fired on: {facts}"
        if (
            best is None or not best.failing
        ):  # pragma: no cover - a rule that did not fire always fails a check
            return "it did not fire"
        first = best.failing[0]
        found = f" — {first.found}" if first.found else ""
        return f"it needs: {first.needs}{found}"

    def lines(self, indent: str = "", *, compact: bool = False) -> list[str]:
        """The condition, then the matched (or closest) facts with every check.

        ``compact`` (for scenario diffs) shows at most two matches of a rule that fired
        and only the closest match of one that did not.
        """
        lines: list[str] = []
        if len(self.conditions) == 1:
            lines.append(f"{indent}It fires when: {self.conditions[0]}.")
        else:
            lines.append(f"{indent}It fires when any of these holds:")
            lines += [f"{indent}  {i}. {text}" for i, text in enumerate(self.conditions, 1)]
        if self.verdict == "out-of-scope" and self.would_fire:
            return lines
        shown: Sequence[Match] = self.matches
        if compact:
            shown = self.matches[:2] if self.fired else [m for m in [self.closest] if m is not None]
        for match in shown:
            which = f" (alternative {match.alternative})" if len(self.conditions) > 1 else ""
            facts = "; ".join(f.label for f in match.facts)
            label = "Matched" if self.fired else "Closest"
            lines.append(f"{indent}{label}{which}:{' ' + facts if facts else ''}")
            for check in match.checks:
                found = f" — {check.found}" if check.found else ""
                lines.append(f"{indent}  {'✓' if check.held else '✗'} {check.needs}{found}")
                lines += [f"{indent}      {line}" for line in check.because]
        if self.near_miss and self.verdict == "not-fired":
            lines.append(f"{indent}Near miss: one condition short of firing.")
        if self.missing_data and not self.fired:
            lines.append(f"{indent}Missing data that would decide it: {', '.join(self.missing_data)}.")
        return lines

    def to_text(self) -> str:
        """The explanation as text a pharmacist can read."""
        lines = [
            f"{self.rule_id} · {self.title}",
            f"{self.category} · severity {self.severity} · confidence {self.confidence} · {self.where}",
        ]
        planned = f"{self.route} in {self.jurisdiction}"
        if self.verdict == "fired":
            lines.append(f"FIRED for {planned}.")
        elif self.verdict == "out-of-scope":
            lines.append(f"DOES NOT APPLY to {planned}: {self.scope}.")
            if self.would_fire:
                lines.append("On these facts its condition holds: it would fire if it applied here.")
        else:
            lines.append(f"DID NOT FIRE for {planned}.")
        lines += self.lines()
        if self.message:
            lines.append(f"The rule says: {self.message}")
        if self.management:
            lines.append(f"Management: {self.management}")
        evidence = "; ".join(f"{e.source}{' ' + e.section if e.section else ''}" for e in self.evidence)
        lines.append(f"Evidence: {evidence}")
        return "\n".join(lines) + "\n"


class CaseAnalysis:
    """One case evaluated once by the reference evaluator, ready to explain any rule.

    Args:
        engine: supplies the rules, strata, terminology and scoping.
        record: the patient record.
        context: route, jurisdiction and ``now``.
        facts: the facts, when already built (they depend only on the record, the
            context and the value sets).
    """

    def __init__(
        self, engine: Engine, record: PatientRecord, context: Context, *, facts: FactSet | None = None
    ) -> None:
        self.engine = engine
        self.context = context
        engine.check_program(context.route, context.jurisdiction)  # no "why" for a refused program
        self.factset = facts if facts is not None else engine.facts(record, context)
        self.in_scope = engine.rules_for(context.route, context.jurisdiction)
        self.scoped_ids = {rule.id for rule in self.in_scope}
        self.raw: RawResult = evaluate(self.in_scope, engine.strata, self.factset.facts)
        self.fired = {firing.rule_id for firing in self.raw.firings}
        self.flags = {flag for rule in self.in_scope if rule.id in self.fired for flag in rule.flags}
        self.by_type: dict[str, list[Fact]] = {}
        for fact in self.factset.facts:
            self.by_type.setdefault(fact["t"], []).append(fact)
        self.by_type[FLAG] = [flag_fact(name) for name in sorted(self.flags)]
        self.labels = dict(self.factset.labels)
        self.labels.update({flag_id(name): f"flag “{name}”" for name in self.flags})
        self.words = Vocabulary(engine.ruleset)
        self._cache: dict[tuple[str, int], Explanation] = {}

    def explain(self, rule_id: str, *, depth: int = 2) -> Explanation:
        """Explain one rule (``depth`` bounds how far flags are followed to their producers).

        Raises:
            InputError: there is no rule with this id.
        """
        key = (rule_id, depth)
        if key not in self._cache:
            self._cache[key] = self._explain(self._rule(rule_id), depth)
        return self._cache[key]

    def _rule(self, rule_id: str) -> Rule:
        try:
            return self.engine.ruleset.rule(rule_id)
        except KeyError:
            close = suggest(rule_id, [r.id for r in self.engine.ruleset.rules])
            hint = f" (did you mean {close}?)" if close else ""
            raise InputError("rule_id", f"no rule {rule_id!r} in {self.engine.ruleset.name}{hint}") from None

    def _scope_reason(self, rule: Rule) -> str | None:
        if rule.id in self.scoped_ids:
            return None
        if self.context.route not in rule.routes:
            return f"it applies only to {', '.join(rule.routes)}, not {self.context.route}"
        ruleset = self.engine.ruleset
        scope = ruleset.jurisdiction_scope(self.context.jurisdiction)
        within = f" (within {', '.join(scope[1:])})" if len(scope) > 1 else ""
        follows = ruleset.follows(self.context.route, self.context.jurisdiction)
        if follows is not None:
            within += f" (following the {follows.label} label)"
        return f"it applies only in {', '.join(rule.jurisdictions)}, not {self.context.jurisdiction}{within}"

    def _explain(self, rule: Rule, depth: int) -> Explanation:
        scope = self._scope_reason(rule)
        alts = alternatives(rule)
        fired = scope is None and rule.id in self.fired
        found: list[Match] = []
        for index, alternative in enumerate(alts, 1):
            found += self._matches(alternative, index, exact=fired, depth=depth)
        would_fire = any(not m.failing for m in found)
        if fired:
            verdict: Verdict = "fired"
            near = False
        elif scope is not None:
            verdict, near = "out-of-scope", would_fire
        else:
            verdict = "not-fired"
            near = any(len(m.checks) >= 2 and len(m.failing) == 1 for m in found)
        sources = {s.id: s.title for s in self.engine.ruleset.sources}
        return Explanation(
            rule_id=rule.id,
            title=rule.title,
            category=rule.category,
            severity=rule.severity,
            confidence=rule.confidence,
            rule_file=rule.file,
            rule_line=rule.line,
            message=rule.finding.message if rule.finding else None,
            management=rule.finding.management if rule.finding else None,
            evidence=tuple(
                EvidenceRef(source=e.source, title=sources.get(e.source, e.source), section=e.section)
                for e in rule.evidence
            ),
            route=self.context.route,
            jurisdiction=self.context.jurisdiction,
            verdict=verdict,
            conditions=tuple(self._alternative_words(a) for a in alts),
            matches=tuple(found),
            near_miss=near,
            scope=scope,
            would_fire=would_fire,
        )

    def _alternative_words(self, alternative: Alternative) -> str:
        parts = [self.words.pattern(p) for p in alternative.positive]
        parts += [self.words.absent(p) for p in alternative.absent]
        parts += [f"the flag “{name}” has not been derived" for name in alternative.missing_flags]
        return " and ".join(parts)

    # -- matching -------------------------------------------------------------------------

    def _candidates(self, pattern: Pattern) -> list[Fact | None]:
        name = flag_name(pattern)
        if name is not None:
            return [flag_fact(name)] if name in self.flags else [None]
        return list(self.by_type.get(pattern.fact, ())) or [None]

    def _failures(self, pattern: Pattern, fact: Fact | None, env: Mapping[str, Fact]) -> int:
        if fact is None:
            return max(1, len(pattern.tests)) if flag_name(pattern) is None else 1
        if flag_name(pattern) is not None:
            return 0
        return sum(not _passes(t, fact, env) for t in pattern.tests)

    def _negated_failures(self, alternative: Alternative) -> int:
        present = sum(
            any(matches(p, f, {}) for f in self.by_type.get(p.fact, ())) for p in alternative.absent
        )
        return present + sum(name in self.flags for name in alternative.missing_flags)

    def _assignments(self, alternative: Alternative, *, exact: bool) -> list[tuple[Fact | None, ...]]:
        """The best assignments of facts to the positive patterns (all exact ones, or the closest).

        Each pattern takes a different fact, as in durable_rules; the closest assignment has
        the fewest failing checks, the first in fact order on ties.
        """
        positive = alternative.positive
        bound = 0 if exact else math.inf
        found: list[tuple[Fact | None, ...]] = []

        def search(index: int, env: dict[str, Fact], chosen: tuple[Fact | None, ...], failures: int) -> None:
            nonlocal bound
            if failures > bound or (found and not exact and failures >= bound) or len(found) >= _MAX_MATCHES:
                return
            if index == len(positive):
                if exact:
                    found.append(chosen)
                else:
                    found[:] = [chosen]
                    bound = failures
                return
            pattern = positive[index]
            free = [f for f in self._candidates(pattern) if f is None or all(f is not c for c in chosen)]
            for fact in free or [None]:
                bound_env = {**env, pattern.alias: fact} if pattern.alias and fact is not None else env
                search(index + 1, bound_env, (*chosen, fact), failures + self._failures(pattern, fact, env))

        search(0, {}, (), self._negated_failures(alternative))
        return found

    def _matches(self, alternative: Alternative, index: int, *, exact: bool, depth: int) -> list[Match]:
        return [
            self._match(alternative, index, chosen, depth)
            for chosen in self._assignments(alternative, exact=exact)
        ]

    def _match(
        self, alternative: Alternative, index: int, chosen: tuple[Fact | None, ...], depth: int
    ) -> Match:
        env: dict[str, Fact] = {}
        checks: list[Check] = []
        facts: list[FactRef] = []
        for pattern, fact in zip(alternative.positive, chosen, strict=True):
            checks += self._pattern_checks(pattern, fact, env, depth)
            if fact is not None and all(ref.id != fact["id"] for ref in facts):
                facts.append(FactRef(id=fact["id"], type=fact["t"], label=self.labels[fact["id"]]))
                if pattern.alias:
                    env[pattern.alias] = fact
        for pattern in alternative.absent:
            present = [f for f in self.by_type.get(pattern.fact, ()) if matches(pattern, f, {})]
            checks.append(
                Check(
                    needs=self.words.absent(pattern),
                    held=not present,
                    found=("but recorded: " + "; ".join(self.labels[f["id"]] for f in present[:3]))
                    if present
                    else None,
                )
            )
        for name in alternative.missing_flags:
            derived = name in self.flags
            checks.append(
                Check(
                    needs=f"the flag “{name}” has not been derived",
                    held=not derived,
                    found="but it was derived" if derived else None,
                    because=self._flag_story(name, depth) if derived else (),
                )
            )
        return Match(alternative=index, facts=tuple(facts), checks=tuple(checks))

    def _pattern_checks(
        self, pattern: Pattern, fact: Fact | None, env: Mapping[str, Fact], depth: int
    ) -> list[Check]:
        name = flag_name(pattern)
        if name is not None:
            return [
                Check(
                    needs=f"the flag “{name}” has been derived",
                    held=fact is not None,
                    found=None if fact is not None else "it was not derived",
                    because=self._flag_story(name, depth),
                )
            ]
        noun = fact_noun(pattern.fact)
        datum = noun.split(" ", 1)[1]
        if not pattern.tests:
            held = fact is not None
            return [
                Check(
                    needs=f"{noun} is recorded" if pattern.fact != "patient" else "a patient record",
                    held=held,
                    found=None if held else f"no {datum} is recorded",
                    missing=None if held else datum,
                )
            ]
        if fact is None:
            # No fact of this type at all: the rule has nothing to look at, but an empty
            # list is "none recorded", so this is not a missing datum of its own.
            return [
                Check(needs=self.words.test(t), held=False, found=f"no {datum} is recorded")
                for t in pattern.tests
            ]
        checks = []
        for test in pattern.tests:
            held = _passes(test, fact, env)
            absent_field = test.field != "vs" and test.field not in fact
            missing = None
            if not held and absent_field and not (test.op == "present" and test.value is False):
                missing = self.words.field(test.field)[0]
            found: str | None = self.words.actual(fact, test.field)
            if held and (test.op in ("member", "present") or isinstance(test.value, bool)):
                found = None  # the requirement already says what was found
            elif not held and test.op == "member":
                found = f"it is {found}"
            elif not held and test.op in ("eq", "ne") and isinstance(test.value, bool) and not absent_field:
                found = f"it {found}"  # "it is not active"
            checks.append(Check(needs=self.words.test(test), held=held, found=found, missing=missing))
        return checks

    def _flag_story(self, name: str, depth: int) -> tuple[str, ...]:
        """Who derived a flag and from what, or why none of its producers fired."""
        lines: list[str] = []
        for producer_id in self.words.producers.get(name, []):
            producer = self.engine.ruleset.rule(producer_id)
            if producer_id in self.fired:
                facts = sorted(
                    {
                        self.labels.get(fact_id, fact_id)
                        for firing in self.raw.firings
                        if firing.rule_id == producer_id
                        for fact_id in firing.facts
                    }
                )
                lines.append(f"derived by {producer_id} ({producer.title}) from: {'; '.join(facts)}")
            elif depth > 0:
                why = self.explain(producer_id, depth=depth - 1).reason()
                lines.append(f"{producer_id} ({producer.title}) did not fire: {why}")
            else:
                lines.append(f"{producer_id} ({producer.title}) did not fire")
        return tuple(lines)


def _passes(test: Any, fact: Fact, env: Mapping[str, Fact]) -> bool:
    if isinstance(test.value, Ref) and test.value.alias not in env:
        # The named pattern has no fact to stand for (none of its type is recorded).
        return False  # pragma: no cover - joins in the slice are of one fact type, so both are absent
    return passes(test, fact, env)


def explain(engine: Engine, record: PatientRecord, context: Context, rule_id: str) -> Explanation:
    """Explain why one rule fired, or why it did not, for one patient and planned treatment.

    Uses the reference evaluator over the same intermediate form the engine runs.

    Args:
        engine: the engine whose rules to explain.
        record: the patient record.
        context: the planned route, the jurisdiction, and ``now``.
        rule_id: the rule, e.g. ``"KCDS-CI-004"``.

    Raises:
        InputError: the rule does not exist (with a did-you-mean), or the record
            cannot be turned into facts.

    .. versionadded:: 0.1.0
    """
    return CaseAnalysis(engine, record, context).explain(rule_id)
