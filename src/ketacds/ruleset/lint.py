"""Lint a ruleset: every problem the loader would stop at, and what it cannot see.

:func:`lint` runs the loader in its collecting mode (:func:`~ketacds.ruleset.load.load_checked`),
so every schema, name, scope and shape check is the loader's own and reports under the
same code, and then checks what only a view of the whole ruleset shows: conditions that
can never hold, rules that duplicate or are shadowed by another, flags that no rule in
scope derives, unused value sets, and the engine backend's capacity for every program
an Engine may compile (the backend says what its limits are: :meth:`Backend.capacity
<ketacds.engine.backend.Backend.capacity>`; durable_rules' by default). Codes are listed
in :mod:`ketacds.ruleset.checks` and explained in ``docs/lint.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs

from ketacds.engine.backend import Backend, backend_named
from ketacds.errors import RulesetError
from ketacds.ruleset import checks, facts, logic, scope
from ketacds.ruleset.checks import CHECKS, Severity
from ketacds.ruleset.ir import Rule, RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION, FACTS_FILE, Checked, load_checked
from ketacds.ruleset.plan import alternatives, flag_name, valuesets_read
from ketacds.vocabulary import DATA_GAP

__all__ = ["LintFinding", "LintReport", "lint", "lint_checked"]


@attrs.frozen
class LintFinding:
    """One problem: where, which check, and what to do."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    suggestion: str | None = None
    rule_id: str | None = None

    @property
    def name(self) -> str:
        """The check's short name (``unknown-valueset``)."""
        return CHECKS[self.code].name

    def location(self, root: str | None = None) -> str:
        """``file:line`` (under ``root`` when given), or the ruleset itself."""
        where = self.file or "(ruleset)"
        if root is not None and self.file is not None:
            where = f"{root.rstrip('/')}/{self.file}"
        return f"{where}:{self.line}" if self.line is not None else where

    def text(self, root: str | None = None) -> str:
        """One line: ``file:line: KL012 error: message (did you mean 'x'?)``."""
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{self.location(root)}: {self.code} {self.severity}: {self.message}{hint}"


@attrs.frozen
class LintReport:
    """Everything :func:`lint` found, sorted by file, line and code."""

    root: str
    name: str | None
    version: str | None
    digest: str | None
    findings: tuple[LintFinding, ...]

    @property
    def errors(self) -> tuple[LintFinding, ...]:
        """The findings that are errors."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[LintFinding, ...]:
        """The findings that are warnings."""
        return tuple(f for f in self.findings if f.severity == "warning")

    def codes(self) -> list[str]:
        """The codes found, in order (handy in tests)."""
        return [f.code for f in self.findings]


def lint(directory: Path | str | None = None, *, backend: str | Backend = "durable") -> LintReport:
    """Check the ruleset in ``directory`` (default: the bundled one) and report every problem found.

    ``backend`` (a registered name or a Backend object) is the engine whose capacity is checked.
    """
    return lint_checked(load_checked(directory), backend=backend)


def lint_checked(checked: Checked, *, backend: str | Backend = "durable") -> LintReport:
    """Lint what :func:`~ketacds.ruleset.load.load_checked` found (capacity: of ``backend``)."""
    engine = backend_named(backend) if isinstance(backend, str) else backend
    findings = [_from_error(error) for error in checked.problems]
    ruleset = checked.ruleset
    if ruleset is not None:
        # What a broken rule would have used or derived is unknown: judge it only when all loaded.
        findings += _whole_ruleset(ruleset, engine, complete=not checked.problems)
    ordered = sorted(set(findings), key=lambda f: (f.file or "", f.line or 0, f.code, f.message))
    return LintReport(
        root=str(checked.root),
        name=ruleset.name if ruleset else None,
        version=ruleset.version if ruleset else None,
        digest=ruleset.digest if ruleset else None,
        findings=tuple(ordered),
    )


def _finding(
    code: str, message: str, *, rule: Rule | None = None, file: str | None = None, line: int | None = None
) -> LintFinding:
    """A finding about ``rule`` (at its line), or at ``file`` and ``line``."""
    return LintFinding(
        code=code,
        severity=CHECKS[code].severity,
        message=message,
        file=rule.file if rule is not None else file,
        line=rule.line if rule is not None else line,
        rule_id=rule.id if rule is not None else None,
    )


def _from_error(error: RulesetError) -> LintFinding:
    code = error.code if error.code in CHECKS else checks.LOAD
    return LintFinding(
        code=code,
        severity=CHECKS[code].severity,
        message=error.reason,
        file=error.file,
        line=error.line,
        suggestion=error.suggestion,
    )


def _whole_ruleset(ruleset: RuleSet, backend: Backend, *, complete: bool) -> list[LintFinding]:
    findings: list[LintFinding] = []
    live: list[Rule] = []
    for rule in ruleset.rules:
        findings += _evidence(rule)
        dead = _dead_alternatives(rule)
        findings += dead
        if not any(f.code == checks.NEVER_HOLDS for f in dead):
            live.append(rule)
    findings += _duplicates_and_shadows(ruleset, live)
    if complete:
        findings += _flags_in_scope(ruleset)
        findings += _unused_valuesets(ruleset)
        findings += _unused_groups(ruleset)
        findings += _concept_coverage(ruleset)
        findings += [
            _finding(checks.FACT_COVERAGE, message, file=FACTS_FILE, line=fact.line)
            for fact, message in facts.problems(ruleset)
        ]
    findings += _capacity(ruleset, backend)
    return findings


def _concept_coverage(ruleset: RuleSet) -> Iterator[LintFinding]:
    """Every program covers each declared concept, follows a label that does, or is refused.

    A gap is reported on the concept's line in the manifest, once per concept, naming the
    programs; a refusal of a program that has no gap (any more) is a warning on its line.
    """
    gaps: dict[str, list[tuple[str, str]]] = {}
    for route, jurisdiction in scope.programs(ruleset):
        found = scope.coverage(ruleset, route, jurisdiction)
        if found.state == "gap":
            for concept in found.missing:
                gaps.setdefault(concept, []).append((route, jurisdiction))
    lines = {concept.id: concept.line for concept in ruleset.concepts}
    for concept, where in gaps.items():
        yield _finding(
            checks.CONCEPT_GAP,
            f"no rule in scope assesses {concept} for {_programs(where)}: name it in a rule's "
            f"concepts, declare a label to follow, or refuse the program",
            file="manifest.yaml",
            line=lines.get(concept),
        )
    for refusal in ruleset.refusals:
        places = (
            [j.id for j in ruleset.jurisdictions]
            if refusal.jurisdiction == ANY_JURISDICTION
            else [refusal.jurisdiction]
        )
        if all(not scope.coverage(ruleset, refusal.route, j).missing for j in places):
            yield _finding(
                checks.REFUSAL_WITHOUT_GAP,
                f"{refusal.route} in {refusal.jurisdiction} is refused, but rules in scope now assess "
                f"every declared concept there: lift the refusal if its reason no longer holds",
                file="manifest.yaml",
                line=refusal.line,
            )


def _evidence(rule: Rule) -> Iterator[LintFinding]:
    for e in rule.evidence:
        if not e.section:
            yield _finding(
                checks.EVIDENCE_WITHOUT_SECTION,
                f"{rule.id} cites {e.source} without the section relied on",
                rule=rule,
            )


def _dead_alternatives(rule: Rule) -> list[LintFinding]:
    options = alternatives(rule)
    reasons = [logic.dead_reason(alternative) for alternative in options]
    if all(reasons):
        why = "; ".join(sorted({r for r in reasons if r}))
        return [_finding(checks.NEVER_HOLDS, f"the condition of {rule.id} can never hold: {why}", rule=rule)]
    return [
        _finding(
            checks.DEAD_ALTERNATIVE,
            f"alternative {index} of {len(options)} in the condition of {rule.id} can never hold: {reason}",
            rule=rule,
        )
        for index, reason in enumerate(reasons, 1)
        if reason
    ]


def _effect(rule: Rule) -> tuple[object, ...]:
    """What a rule adds to an Assessment besides its status: the same effect twice is redundant."""
    if rule.finding is None:
        said: object = None
    elif rule.category == DATA_GAP:
        said = ("missing", rule.finding.missing)
    else:
        said = ("message", rule.finding.message)
    return (rule.category, rule.flags, rule.dose, said)


def _covers(a: Rule, b: Rule, ruleset: RuleSet) -> bool:
    """Whenever ``b`` and ``a`` both fire, ``a`` already says all that ``b`` says."""
    if a.category != b.category or not set(b.flags) <= set(a.flags):
        return False
    if b.dose is not None and b.dose != a.dose:
        return False
    if b.finding is not None and _effect(b)[3] != _effect(a)[3]:
        return False
    status_b = ruleset.status.status_of(b.severity)
    status_a = ruleset.status.status_of(a.severity)
    if status_b is None:
        return True
    return status_a is not None and ruleset.status.rank(status_a) <= ruleset.status.rank(status_b)


def _jurisdictions_within(ruleset: RuleSet, inner: Rule, outer: Rule) -> bool:
    if ANY_JURISDICTION in outer.jurisdictions:
        return True
    if ANY_JURISDICTION in inner.jurisdictions:
        return False
    return all(set(ruleset.jurisdiction_scope(j)) & set(outer.jurisdictions) for j in inner.jurisdictions)


def _duplicates_and_shadows(ruleset: RuleSet, rules: list[Rule]) -> list[LintFinding]:
    """Pairs of rules of one category where one adds nothing the other does not say.

    Cheap tests (category, effect, scope) come before the implication between conditions.
    """
    programs = [set(scope.rules_for(ruleset, *program)) for program in scope.programs(ruleset)]
    live = {rule.id: logic.live_alternatives(rule) for rule in rules}

    def implies(b: Rule, a: Rule) -> bool:
        return logic.alternatives_imply(live[b.id], live[a.id])

    findings = []
    for b in rules:
        for a in rules:
            if a is b or a.category != b.category:
                continue
            same = _effect(a) == _effect(b) and a.severity == b.severity
            if same and implies(a, b) and implies(b, a):
                first = (a.file or "", a.line or 0, a.id) < (b.file or "", b.line or 0, b.id)
                if first and any(a in program and b in program for program in programs):
                    where = f" ({a.file}:{a.line})" if a.file else ""
                    findings.append(
                        _finding(
                            checks.DUPLICATE_RULE,
                            f"{b.id} has the same condition and effect as {a.id}{where}",
                            rule=b,
                        )
                    )
                continue  # a duplicate is reported once, on the later rule
            contributes = b.flags or b.dose or ruleset.status.status_of(b.severity)
            if (
                contributes
                and set(b.routes) <= set(a.routes)
                and _jurisdictions_within(ruleset, b, a)
                and _covers(a, b, ruleset)
                and implies(b, a)
            ):
                findings.append(
                    _finding(
                        checks.SHADOWED_RULE,
                        f"{b.id} adds nothing: whenever it fires, {a.id} ({a.file}:{a.line}) fires too "
                        f"and says the same at least as seriously",
                        rule=b,
                    )
                )
    return findings


def _flags_in_scope(ruleset: RuleSet) -> list[LintFinding]:
    vacuous: dict[tuple[str, str], list[tuple[str, str]]] = {}
    unreachable: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for program in scope.programs(ruleset):
        rules = scope.rules_for(ruleset, *program)
        produced = {flag for rule in rules for flag in rule.flags}
        for rule in rules:
            for alternative in alternatives(rule):
                if logic.dead_reason(alternative) is not None:
                    continue
                for flag in set(alternative.missing_flags) - produced:
                    vacuous.setdefault((rule.id, flag), []).append(program)
                read = {flag_name(p) for p in alternative.positive} - {None}
                for flag in sorted(str(f) for f in read - produced):
                    unreachable.setdefault((rule.id, flag), []).append(program)
    findings = []
    for (rule_id, flag), where in sorted(vacuous.items()):
        findings.append(
            _finding(
                checks.VACUOUS_NEGATION,
                f"{rule_id} needs flag {flag!r} absent, but no rule in scope derives it for "
                f"{_programs(where)}: there the negation always holds",
                rule=ruleset.rule(rule_id),
            )
        )
    for (rule_id, flag), where in sorted(unreachable.items()):
        findings.append(
            _finding(
                checks.UNREACHABLE_FLAG,
                f"{rule_id} needs flag {flag!r}, but no rule in scope derives it for "
                f"{_programs(where)}: there the part of its condition that needs it never holds",
                rule=ruleset.rule(rule_id),
            )
        )
    return findings


def _programs(programs: list[tuple[str, str]]) -> str:
    by_route: dict[str, list[str]] = {}
    for route, jurisdiction in programs:
        by_route.setdefault(route, []).append(jurisdiction)
    return "; ".join(f"{route} in {', '.join(sorted(js))}" for route, js in by_route.items())


def _unused_valuesets(ruleset: RuleSet) -> Iterator[LintFinding]:
    used = set().union(*(valuesets_read(rule) for rule in ruleset.rules))
    used |= {entry.valueset for table in ruleset.tables for entry in table.entries}
    for valueset in ruleset.valuesets:
        # A "known, no rule needs it" list is read by fact building, never by a rule.
        if valueset.id not in used and not valueset.known:
            yield _finding(
                checks.UNUSED_VALUESET,
                f"value set {valueset.id!r} is not used by any rule",
                file=valueset.file,
                line=1,
            )


def _unused_groups(ruleset: RuleSet) -> Iterator[LintFinding]:
    named = {rule.group for rule in ruleset.rules}
    for group in ruleset.groups:
        if group.id not in named:
            yield _finding(
                checks.UNUSED_GROUP,
                f"group {group.id!r} is named by no rule: give rules `group: {group.id}` or remove it",
                file="manifest.yaml",
                line=group.line,
            )


def _capacity(ruleset: RuleSet, backend: Backend) -> Iterator[LintFinding]:
    """What the backend says each (route, jurisdiction) program would exceed, on the manifest."""
    for route, jurisdiction in scope.programs(ruleset):
        for problem in backend.capacity(scope.rules_for(ruleset, route, jurisdiction), route, jurisdiction):
            yield _finding(problem.code, problem.message, file="manifest.yaml")
