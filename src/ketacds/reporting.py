"""Render an Assessment as text (for people at a terminal), Markdown, or JSON.

Renderers only format; every word of clinical content comes from the Assessment,
and so from the rulesets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from ketacds.models.quality import DataQualityIssue
from ketacds.models.results import Assessment, DoseOption, Finding

__all__ = ["dose_line", "dose_text", "render", "to_markdown", "to_text"]

_WIDTH = 88


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=_WIDTH, initial_indent=indent, subsequent_indent=indent) or [indent]


def dose_line(option: DoseOption) -> str:
    """One dose option in words, e.g. ``standard (actual body weight): 35.0 mg over 40 min (...)``."""
    if option.dose_mg is None:
        return f"{option.label}: not calculated ({option.not_computed})"
    if option.mg_per_kg is None:
        # A fixed dose (esketamine) or a stepped one has no weight basis: never "(None)".
        basis = option.formula or option.weight_basis
        return f"{option.label}: {option.dose_mg} mg" + (f" ({basis})" if basis else "")
    minutes = f" over {option.infusion_minutes} min" if option.infusion_minutes else ""
    text = f"{option.label}: {option.dose_mg} mg{minutes}"
    if option.mg_per_kg is not None:
        text += (
            f" ({option.mg_per_kg} mg/kg x {option.dosing_weight_kg} kg {option.weight_basis} weight"
            f"{', ' + option.formula if option.formula else ''})"
        )
    if option.schedule:
        text += f"; {option.schedule}"
    return text


def _where(issue: DataQualityIssue) -> str:
    parts = [part for part in (issue.resource, issue.path) if part]
    return f" [{' '.join(parts)}]" if parts else ""


def dose_text(option: DoseOption) -> str:
    """One dose option without its label: ``54.4 mg over 40 min (0.5 mg/kg x 108.9 kg actual weight)``."""
    line = dose_line(option)
    prefix = f"{option.label}: "
    return line[len(prefix) :] if line.startswith(prefix) else line


def _dose_line(option: DoseOption) -> str:
    return f"{option.label}: {dose_text(option)}"


def _evidence(finding: Finding) -> str:
    return "; ".join(f"{e.source}{' ' + e.section if e.section else ''}" for e in finding.evidence)


def to_text(assessment: Assessment, *, title: str | None = None) -> str:
    """A plain-text report a clinician can check line by line."""
    p = assessment.provenance
    lines: list[str] = []
    if title:
        lines += [title, "=" * min(len(title), _WIDTH)]
    lines.append(f"Status: {assessment.status.upper()}")
    lines += _wrap(assessment.status_meaning, "  ")
    lines.append(f"Planned: {p.route} in {p.jurisdiction}, assessed at {p.now}")
    if p.follows:
        lines += _wrap(f"Label followed: {p.follows} ({p.follows_basis})", "  ")
    if assessment.data_gaps:
        lines += ["", "Data gaps (could change the answer):"]
        for gap in assessment.data_gaps:
            lines += _wrap(f"- {gap.missing}: {gap.message} [{gap.rule_id}]", "  ")
    lines += ["", "Findings:" if assessment.findings else "Findings: none"]
    for f in assessment.findings:
        advisory = ", advisory" if f.advisory else ""
        lines.append(
            f"  [{f.severity}] {f.title} ({f.rule_id}, {f.category}, confidence {f.confidence}{advisory})"
        )
        lines += _wrap(f.message, "      ")
        if f.management:
            lines += _wrap(f"Management: {f.management}", "      ")
        lines += _wrap(f"Evidence: {_evidence(f)}", "      ")
        basis = "; ".join(b.label for b in f.basis) or "(none)"
        lines += _wrap(f"Because of: {basis}", "      ")
    if assessment.dose is not None:
        lines += ["", "Dose:"]
        for option in assessment.dose.options:
            lines += _wrap(f"- {dose_line(option)} [{option.rule_id}]", "  ")
    if assessment.dose_withheld:
        lines += ["", "Dose:"]
        lines += _wrap(f"- {assessment.dose_withheld}", "  ")
    if assessment.monitoring:
        lines += ["", "Monitoring:"]
        for item in assessment.monitoring:
            timing = f" ({item.timing})" if item.timing else ""
            lines += _wrap(f"- {item.title}{timing} [{item.rule_id}]", "  ")
    if assessment.data_quality:
        lines += ["", "Data quality (what the record did not let us read):"]
        for issue in assessment.data_quality:
            lines += _wrap(f"- {issue.severity}: {issue.message}{_where(issue)}", "  ")
    lines += [
        "",
        f"Rules: {p.ruleset} {p.version}, digest {p.digest[:16]}..., ketacds {p.package_version}",
        "Advisory only: this informs a clinician; it does not order treatment.",
    ]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(assessment: Assessment, *, title: str | None = None) -> str:
    """A Markdown report (for notes, tickets, and documentation)."""
    p = assessment.provenance
    out: list[str] = []
    if title:
        out += [f"## {title}", ""]
    out += [f"**Status: {assessment.status}** — {assessment.status_meaning}", ""]
    out += [f"Planned: `{p.route}` in `{p.jurisdiction}`, assessed at {p.now}.", ""]
    if p.follows:
        out += [f"Label followed: **{p.follows}** — {p.follows_basis}", ""]
    if assessment.data_gaps:
        out += ["### Data gaps", ""]
        out += [f"- **{g.missing}**: {g.message} (`{g.rule_id}`)" for g in assessment.data_gaps]
        out.append("")
    out += ["### Findings", ""]
    if assessment.findings:
        out += ["| rule | severity | finding | evidence | because of |", "|---|---|---|---|---|"]
        for f in assessment.findings:
            basis = "; ".join(b.label for b in f.basis) or "—"
            cells: Iterable[str] = (
                f"`{f.rule_id}`",
                f.severity,
                f"**{f.title}**. {f.message}",
                _evidence(f),
                basis,
            )
            out.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    else:
        out.append("None.")
    if assessment.dose is not None:
        out += ["", "### Dose", ""]
        out += [f"- {dose_line(o)} (`{o.rule_id}`)" for o in assessment.dose.options]
    if assessment.dose_withheld:
        out += ["", "### Dose", "", f"- {_md_escape(assessment.dose_withheld)}"]
    if assessment.monitoring:
        out += ["", "### Monitoring", ""]
        out += [
            f"- {m.instruction}{' — ' + m.timing if m.timing else ''} (`{m.rule_id}`)"
            for m in assessment.monitoring
        ]
    if assessment.data_quality:
        out += ["", "### Data quality", ""]
        out += [f"- **{i.severity}**: {i.message}{_where(i)}" for i in assessment.data_quality]
    out += ["", f"*Rules {p.ruleset} {p.version}, digest `{p.digest}`; ketacds {p.package_version}.*", ""]
    return "\n".join(out)


def render(assessment: Assessment, fmt: str, *, title: str | None = None) -> str:
    """Render in ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return assessment.to_json(indent=2) + "\n"
    if fmt == "markdown":
        return to_markdown(assessment, title=title)
    return to_text(assessment, title=title)
