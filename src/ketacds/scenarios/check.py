"""Compare a scenario's expectations with an Assessment.

:func:`validate` checks, before anything runs, that every name an expectation uses
exists in the ruleset (a misspelt rule id under ``absent`` would otherwise pass
forever). :func:`compare` is a pure function of the expectations and the
Assessment; it returns one :class:`Mismatch` per expectation that did not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Literal

import attrs

from ketacds.errors import ScenarioError
from ketacds.models.results import Assessment, DoseOption, Finding
from ketacds.reporting import dose_line, dose_text
from ketacds.ruleset.ir import RuleSet
from ketacds.ruleset.load import ANY_JURISDICTION
from ketacds.scenarios.model import DoseExpectation, FindingExpectation, Scenario, TextExpectation
from ketacds.vocabulary import DATA_GAP, MONITORING
from ketacds.yamldoc import suggest

__all__ = ["Mismatch", "assessment_text", "compare", "validate"]

Kind = Literal[
    "status",
    "finding",
    "absent",
    "dose",
    "monitoring",
    "data-gap",
    "no-data-gaps",
    "text",
    "not-text",
    "refused",
]


@attrs.frozen(kw_only=True)
class Mismatch:
    """One expectation that did not hold.

    Attributes:
        kind: which sort of expectation.
        line: where it is written in the scenario file.
        summary: the expectation in words.
        expected: what the scenario expects.
        actual: what the engine said instead.
        why_not: rules whose not firing explains the difference.
        why: rules whose firing explains the difference.
    """

    kind: Kind
    line: int | None
    summary: str
    expected: str
    actual: str
    why_not: tuple[str, ...] = ()
    why: tuple[str, ...] = ()


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def _finding_matches(expectation: FindingExpectation, finding: Finding, *, severity: bool = True) -> bool:
    return (
        (expectation.rule_id is None or finding.rule_id == expectation.rule_id)
        and (expectation.category is None or finding.category == expectation.category)
        and (expectation.title is None or _fold(finding.title) == _fold(expectation.title))
        and (not severity or expectation.severity is None or finding.severity == expectation.severity)
    )


def _rules_for(expectation: FindingExpectation, ruleset: RuleSet) -> list[str]:
    return [
        rule.id
        for rule in ruleset.rules
        if (expectation.rule_id is None or rule.id == expectation.rule_id)
        and (expectation.category is None or rule.category == expectation.category)
        and (expectation.title is None or _fold(rule.title) == _fold(expectation.title))
    ]


def validate(scenario: Scenario, ruleset: RuleSet) -> None:
    """Check that every rule, status, severity, title, gap and dose label named exists.

    Raises:
        ScenarioError: at the line of the first unknown name, with a did-you-mean.
    """
    expect = scenario.expect

    def fail(reason: str, line: int | None, name: str = "", known: Iterable[str] = ()) -> ScenarioError:
        return ScenarioError(reason, file=scenario.file, line=line, suggestion=suggest(name, known))

    if expect.refused and expect.count > 1:
        raise fail(
            "'refused' stands alone: a refused program gives no Assessment to compare", expect.refused_line
        )
    rule_ids = {rule.id for rule in ruleset.rules}
    levels = [level.name for level in ruleset.status.levels]
    if expect.status is not None and expect.status.status not in levels:
        status = expect.status.status
        raise fail(
            f"unknown status {status!r}; the statuses are {', '.join(levels)}",
            expect.status.line,
            status,
            levels,
        )
    severities = dict(ruleset.status.severities)
    for item in (*expect.findings, *expect.absent):
        if item.rule_id is not None and item.rule_id not in rule_ids:
            reason = f"no rule {item.rule_id} in {ruleset.name} {ruleset.version}"
            raise fail(reason, item.line, item.rule_id, rule_ids)
        if item.severity is not None and item.severity not in severities:
            raise fail(f"unknown severity {item.severity!r}", item.line, item.severity, severities)
        matching = _rules_for(item, ruleset)
        if not matching:
            reason = f"no rule has the {item.category or ''} title {item.title!r}".replace("  ", " ")
            raise fail(reason, item.line, item.title or "", (rule.title for rule in ruleset.rules))
        if all(ruleset.rule(rule_id).finding is None for rule_id in matching):
            raise fail(
                f"{item.describe()} is a derivation rule: it derives flags and never reports a finding",
                item.line,
            )
    monitoring = [rule.id for rule in ruleset.rules if rule.category == MONITORING]
    for named in expect.monitoring:
        if named.name not in monitoring:
            reason = f"{named.name} is not a monitoring rule; monitoring rules are {', '.join(monitoring)}"
            raise fail(reason, named.line, named.name, monitoring)
    gap_names = {
        name
        for rule in ruleset.rules
        if rule.category == DATA_GAP and rule.finding is not None
        for name in (rule.id, rule.finding.missing or rule.title)
    }
    for named in expect.data_gaps:
        if _fold(named.name) not in {_fold(name) for name in gap_names}:
            known = ", ".join(sorted(n for n in gap_names if not n.startswith("KCDS-")))
            raise fail(
                f"no data-gap rule is about {named.name!r}; known: {known}", named.line, named.name, gap_names
            )
    for words in expect.text:
        if not _fold(words.text):
            raise fail("the text to look for is empty", words.line)
    if expect.dose is not None and expect.dose.label is not None:
        labels = [rule.dose.label for rule in ruleset.rules if rule.dose is not None]
        if _fold(expect.dose.label) not in {_fold(label) for label in labels}:
            reason = f"no dosing rule has the label {expect.dose.label!r}; labels: {', '.join(labels)}"
            raise fail(reason, expect.dose.line, expect.dose.label, labels)


def assessment_text(assessment: Assessment) -> list[tuple[str | None, str, str]]:
    """Every piece of text the rules put in an Assessment, as (rule id or None, where, text).

    What a renderer shows (text, Markdown, a CDS Hooks card) is made of these: the status
    meaning, the label followed, each finding's title, message, management and evidence,
    each monitoring item, data gap and dose option, and why a dose is withheld. The
    patient's own data (the "because of" labels, data-quality messages) are left out: a
    scenario's ``not_text`` is about what the rules say, not about what the record holds.
    """
    p = assessment.provenance
    pieces: list[tuple[str | None, str, str]] = [(None, "status", assessment.status_meaning)]
    if p.follows:
        pieces.append((None, "label followed", f"{p.follows} {p.follows_basis or ''}"))
    for f in assessment.findings:
        pieces += [(f.rule_id, "title", f.title), (f.rule_id, "message", f.message)]
        if f.management:
            pieces.append((f.rule_id, "management", f.management))
        for e in f.evidence:
            pieces.append((f.rule_id, "evidence", " ".join(filter(None, (e.source, e.title, e.section)))))
    for m in assessment.monitoring:
        pieces += [(m.rule_id, "monitoring", m.title), (m.rule_id, "monitoring", m.instruction)]
        if m.timing:
            pieces.append((m.rule_id, "timing", m.timing))
    for g in assessment.data_gaps:
        pieces += [(g.rule_id, "data gap", g.missing), (g.rule_id, "data gap", g.message)]
        if g.management:
            pieces.append((g.rule_id, "data gap", g.management))
    for o in assessment.dose.options if assessment.dose is not None else ():
        pieces.append((o.rule_id, "dose", dose_line(o)))
    if assessment.dose_withheld:
        pieces.append((None, "dose withheld", assessment.dose_withheld))
    return pieces


def _text(words: TextExpectation, assessment: Assessment) -> Mismatch | None:
    wanted = _fold(words.text)
    found = list(dict.fromkeys(piece for piece in assessment_text(assessment) if wanted in _fold(piece[2])))
    if bool(found) == words.present:
        return None
    shown = "; ".join(f"{rule_id or 'Assessment'} {where}: “{text}”" for rule_id, where, text in found)
    return Mismatch(
        kind="text" if words.present else "not-text",
        line=words.line,
        summary=f"The Assessment's text must {'' if words.present else 'not '}contain “{words.text}”",
        expected="in the text" if words.present else "not in the text",
        actual=shown or "not in any finding, monitoring item, data gap or dose",
        why=tuple(dict.fromkeys(rule_id for rule_id, _, _ in found if rule_id is not None)),
    )


def _finding_text(finding: Finding) -> str:
    return f"{finding.rule_id} {finding.title} [{finding.severity}]"


def compare(scenario: Scenario, assessment: Assessment, ruleset: RuleSet) -> list[Mismatch]:
    """Every expectation of ``scenario`` that ``assessment`` does not meet, in file order."""
    expect = scenario.expect
    found: list[Mismatch] = []
    if expect.refused:
        found.append(
            Mismatch(
                kind="refused",
                line=expect.refused_line,
                summary=f"The rules must refuse {scenario.context.route} in {scenario.context.jurisdiction}",
                expected="refused (ProgramRefusedError)",
                actual=f"assessed: {assessment.status}",
            )
        )
    if expect.status is not None and expect.status.status != assessment.status:
        found.append(_status(expect.status.status, expect.status.line, assessment, ruleset))
    for item in expect.findings:
        if not any(_finding_matches(item, f) for f in assessment.findings):
            found.append(_missing_finding(item, assessment, ruleset))
    for item in expect.absent:
        present = [f for f in assessment.findings if _finding_matches(item, f)]
        if present:
            found.append(
                Mismatch(
                    kind="absent",
                    line=item.line,
                    summary=f"Finding {item.describe()} must be absent",
                    expected="not reported",
                    actual="reported: " + "; ".join(_finding_text(f) for f in present),
                    why=tuple(f.rule_id for f in present),
                )
            )
    if expect.dose is not None:
        mismatch = _dose(expect.dose, assessment, ruleset)
        if mismatch is not None:
            found.append(mismatch)
    monitored = {item.rule_id for item in assessment.monitoring}
    for named in expect.monitoring:
        if named.name not in monitored:
            found.append(
                Mismatch(
                    kind="monitoring",
                    line=named.line,
                    summary=f"Monitoring {named.name} {ruleset.rule(named.name).title}",
                    expected="among the monitoring items",
                    actual="monitoring items: " + (", ".join(sorted(monitored)) or "none"),
                    why_not=(named.name,),
                )
            )
    gaps = assessment.data_gaps
    for named in expect.data_gaps:
        name = _fold(named.name)
        if not any(name in (_fold(gap.missing), _fold(gap.rule_id)) for gap in gaps):
            rules = [
                rule.id
                for rule in ruleset.rules
                if rule.category == DATA_GAP
                and rule.finding is not None
                and name in (_fold(rule.id), _fold(rule.finding.missing or rule.title))
            ]
            found.append(
                Mismatch(
                    kind="data-gap",
                    line=named.line,
                    summary=f"Data gap “{named.name}”",
                    expected="reported as missing",
                    actual="data gaps: " + (", ".join(f"{g.missing} ({g.rule_id})" for g in gaps) or "none"),
                    why_not=tuple(rules),
                )
            )
    found += filter(None, (_text(words, assessment) for words in expect.text))
    if expect.no_data_gaps and gaps:
        found.append(
            Mismatch(
                kind="no-data-gaps",
                line=expect.no_data_gaps_line,
                summary="No data gaps",
                expected="no data gap",
                actual="data gaps: " + ", ".join(f"{g.missing} ({g.rule_id})" for g in gaps),
                why=tuple(g.rule_id for g in gaps),
            )
        )
    return found


def _status(expected: str, line: int | None, assessment: Assessment, ruleset: RuleSet) -> Mismatch:
    table = ruleset.status
    meaning = {level.name: level.meaning for level in table.levels}
    reaching = [f for f in assessment.findings if table.status_of(f.severity) == assessment.status]
    why_not: tuple[str, ...] = ()
    if table.rank(expected) < table.rank(assessment.status):
        # A more serious status was expected: which rules could have given it?
        severities = {severity for severity, level in table.severities if level == expected}
        scope = set(assessment.provenance.jurisdiction_scope) | {ANY_JURISDICTION}
        why_not = tuple(
            rule.id
            for rule in ruleset.rules
            if rule.severity in severities
            and assessment.provenance.route in rule.routes
            and scope & set(rule.jurisdictions)
        )
    return Mismatch(
        kind="status",
        line=line,
        summary="Overall status",
        expected=f"{expected} — {meaning[expected]}",
        actual=f"{assessment.status} — {assessment.status_meaning}",
        why_not=why_not,
        why=tuple(f.rule_id for f in reaching),
    )


def _missing_finding(item: FindingExpectation, assessment: Assessment, ruleset: RuleSet) -> Mismatch:
    other_severity = [f for f in assessment.findings if _finding_matches(item, f, severity=False)]
    if other_severity:
        return Mismatch(
            kind="finding",
            line=item.line,
            summary=f"Finding {item.describe()} must be present",
            expected=f"severity {item.severity}",
            actual="reported with severity " + ", ".join(f.severity for f in other_severity),
        )
    rules = _rules_for(item, ruleset)
    title = ruleset.rule(rules[0]).title if item.rule_id is not None and rules else None
    return Mismatch(
        kind="finding",
        line=item.line,
        summary=f"Finding {item.describe()}{' ' + title if title else ''} must be present",
        expected="reported",
        actual="not reported",
        why_not=tuple(rules),
    )


def _option_text(option: DoseOption) -> str:
    return f"“{option.label}”: {dose_text(option)}"


def _expected_dose_text(dose: DoseExpectation) -> str:
    parts = []
    if dose.mg is not None:
        parts.append(f"{dose.mg} mg")
    if dose.infusion_minutes is not None:
        parts.append(f"over {dose.infusion_minutes} min")
    if dose.mg_per_kg is not None:
        parts.append(f"{dose.mg_per_kg} mg/kg")
    if dose.dosing_weight_kg is not None:
        parts.append(f"dosing weight {dose.dosing_weight_kg} kg")
    text = ", ".join(parts) or "a dose"
    if dose.tolerance:
        text += f" (± {dose.tolerance})"
    return f"“{dose.label}”: {text}" if dose.label else text


def _close(actual: Decimal | None, expected: Decimal | None, tolerance: Decimal) -> bool:
    if expected is None:
        return True
    return actual is not None and abs(actual - expected) <= tolerance


def _dose(dose: DoseExpectation, assessment: Assessment, ruleset: RuleSet) -> Mismatch | None:
    options: Sequence[DoseOption] = assessment.dose.options if assessment.dose is not None else ()
    dose_rules = tuple(rule.id for rule in ruleset.rules if rule.dose is not None)
    actual = "; ".join(_option_text(o) for o in options) or "no dose advice"
    if dose.none:
        if not options:
            return None
        return Mismatch(
            kind="dose",
            line=dose.line,
            summary="Dose",
            expected="no dose advice",
            actual=actual,
            why=tuple(o.rule_id for o in options),
        )
    chosen = options[0] if options else None
    if dose.label is not None:
        chosen = next((o for o in options if _fold(o.label) == _fold(dose.label)), None)
    if chosen is None:
        labelled = [
            rule.id
            for rule in ruleset.rules
            if rule.dose is not None
            and dose.label is not None
            and _fold(rule.dose.label) == _fold(dose.label)
        ]
        return Mismatch(
            kind="dose",
            line=dose.line,
            summary="Dose",
            expected=_expected_dose_text(dose),
            actual=actual,
            why_not=tuple(labelled) if dose.label else dose_rules,
        )
    ok = (
        _close(chosen.dose_mg, dose.mg, dose.tolerance)
        and _close(chosen.mg_per_kg, dose.mg_per_kg, dose.tolerance)
        and _close(chosen.dosing_weight_kg, dose.dosing_weight_kg, dose.tolerance)
        and (dose.infusion_minutes is None or dose.infusion_minutes == chosen.infusion_minutes)
    )
    if ok:
        return None
    return Mismatch(
        kind="dose",
        line=dose.line,
        summary="Dose",
        expected=_expected_dose_text(dose),
        actual=_option_text(chosen),
        why=(chosen.rule_id,),
    )
