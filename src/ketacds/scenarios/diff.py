"""The clinical diff: what a failed scenario expected, what the engine said, and why.

Written for a pharmacist, not a programmer: each expectation that did not hold is
named with its line in the scenario file, then the expectation and the engine's
answer in words, then the rule's own explanation — for a finding that is missing,
why it did not fire (its closest match, the condition that failed, or the datum
that is missing); for one that should not be there, the facts it matched.
"""

from __future__ import annotations

from collections.abc import Sequence

from ketacds.models.results import Assessment
from ketacds.scenarios.check import Mismatch
from ketacds.scenarios.explain import CaseAnalysis, Explanation
from ketacds.scenarios.model import Scenario

__all__ = ["explanation_lines", "render_error", "render_failure"]

# A status mismatch lists at most this many rules that could have given the expected status.
_MAX_CANDIDATES = 6


def explanation_lines(explanation: Explanation, indent: str = "") -> list[str]:
    """A rule's explanation, compactly: which rule, then its condition and the facts checked."""
    e = explanation
    lines = [f"{indent}{e.rule_id} {e.title} · {e.where}"]
    if e.verdict == "out-of-scope":
        return [*lines, f"{indent}  It does not apply here: {e.scope}."]
    lines += e.lines(indent + "  ", compact=True)
    if e.fired and e.message:
        lines.append(f"{indent}  The rule says: {e.message}")
    return lines


def _mismatch_lines(mismatch: Mismatch, analysis: CaseAnalysis, assessment: Assessment) -> list[str]:
    where = f"  (line {mismatch.line})" if mismatch.line else ""
    lines = [
        f"  ✗ {mismatch.summary}{where}",
        f"      expected:    {mismatch.expected}",
        f"      engine says: {mismatch.actual}",
    ]
    if mismatch.kind == "status":
        for rule_id in mismatch.why:
            finding = assessment.finding(rule_id)
            basis = "; ".join(b.label for b in finding.basis) if finding else ""
            because = f", because of: {basis}" if basis else ""
            lines.append(f"      decided by:  {rule_id} {finding.title if finding else ''}{because}")
        if mismatch.why_not:
            expected_status = mismatch.expected.split(" — ")[0]
            lines.append(f"      rules that could give {expected_status} here, and why they did not fire:")
            for rule_id in mismatch.why_not[:_MAX_CANDIDATES]:
                explanation = analysis.explain(rule_id)
                lines.append(f"        {rule_id} {explanation.title}: {explanation.reason()}")
            if len(mismatch.why_not) > _MAX_CANDIDATES:
                lines.append(f"        … and {len(mismatch.why_not) - _MAX_CANDIDATES} more")
        return lines
    for rule_id in mismatch.why_not:
        lines.append("      why not:")
        lines += explanation_lines(analysis.explain(rule_id), "        ")
    for rule_id in mismatch.why:
        lines.append("      why:")
        lines += explanation_lines(analysis.explain(rule_id), "        ")
    return lines


def _header(word: str, scenario: Scenario) -> list[str]:
    lines = [f"{word}: {scenario.title}", f"  Scenario: {scenario.where}"]
    if scenario.source:
        lines.append(f"  Source: {scenario.source}")
    return lines


def render_failure(
    scenario: Scenario, mismatches: Sequence[Mismatch], assessment: Assessment, analysis: CaseAnalysis
) -> str:
    """The clinical diff of a scenario that failed."""
    c = scenario.context
    lines = _header("FAIL", scenario)
    lines.append(
        f"  Case: {analysis.factset.labels.get('patient', 'patient')} · {c.route} in {c.jurisdiction} · "
        f"assessed at {c.now.isoformat()}"
    )
    findings = ", ".join(assessment.rule_ids) or "none"
    lines.append(f"  Engine: status {assessment.status}; findings {findings}")
    lines.append("")
    for mismatch in mismatches:
        lines += _mismatch_lines(mismatch, analysis, assessment)
    total = scenario.expect.count
    lines += ["", f"  {len(mismatches)} of {total} expectation{'s' if total != 1 else ''} did not hold."]
    return "\n".join(lines) + "\n"


def render_error(scenario: Scenario, message: str) -> str:
    """The report of a scenario that could not be run (a bad scenario, or an engine failure)."""
    return "\n".join([*_header("ERROR", scenario), f"  {message}"]) + "\n"
