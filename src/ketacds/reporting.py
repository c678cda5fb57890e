"""Render an Assessment as text (for people at a terminal), Markdown, or JSON.

Renderers only format; every word of clinical content comes from the Assessment,
and so from the rulesets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from ketacds.markup import md_escape
from ketacds.models.quality import DataQualityIssue
from ketacds.models.results import Assessment, DoseOption, Finding, FindingGroup, MonitoringItem

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


def _hanging(text: str, indent: str) -> list[str]:
    """A list item wrapped under its own text, never breaking a rule id at its hyphens."""
    return textwrap.wrap(
        text, width=_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    )


def _member(finding: Finding) -> str:
    """One member of a group, compactly: its title and rule id (and "advisory" when M)."""
    return f"{finding.title} ({finding.rule_id}{', advisory' if finding.advisory else ''})"


def _groups(assessment: Assessment, expand: bool) -> tuple[FindingGroup, ...]:
    """The groups shown as one item each (none when every finding is shown in full)."""
    return () if expand else assessment.groups


def _group_severity(members: tuple[Finding, ...]) -> str:
    """The most serious severity among a group's members: the first's (findings come most serious first)."""
    return members[0].severity


def _findings_text(f: Finding) -> list[str]:
    advisory = ", advisory" if f.advisory else ""
    lines = [f"  [{f.severity}] {f.title} ({f.rule_id}, {f.category}, confidence {f.confidence}{advisory})"]
    lines += _wrap(f.message, "      ")
    if f.management:
        lines += _wrap(f"Management: {f.management}", "      ")
    lines += _wrap(f"Evidence: {_evidence(f)}", "      ")
    basis = "; ".join(b.label for b in f.basis) or "(none)"
    lines += _wrap(f"Because of: {basis}", "      ")
    return lines


def _monitoring_line(item: MonitoringItem) -> str:
    timing = f" ({item.timing})" if item.timing else ""
    return f"- {item.title}{timing} [{item.rule_id}]"


def to_text(assessment: Assessment, *, title: str | None = None, expand_groups: bool = False) -> str:
    """A plain-text report a clinician can check line by line.

    Findings of a presentation group (the same for every patient on the route) are shown
    as one item, after the findings about this patient: the group's title and a compact
    list of its members. ``expand_groups`` shows every finding in full instead.
    """
    p = assessment.provenance
    groups = _groups(assessment, expand_groups)
    grouped = {g.id for g in groups}
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
        if f.group not in grouped:
            lines += _findings_text(f)
    for group in groups:
        members = assessment.members(group.id)
        severity = _group_severity(members)
        lines.append(f"  [{severity}] {group.title} ({len(members)} items, group {group.id})")
        if group.note:
            lines += _wrap(group.note, "      ")
        for member in members:
            lines += _hanging(f"- {_member(member)}", "      ")
    if groups:
        lines += _wrap(
            "Each grouped item in full: the JSON output, `ketacds assess --expand-groups`, or "
            "`ketacds explain FILE --rule ID`.",
            "  ",
        )
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
            if item.group not in grouped:
                lines += _wrap(_monitoring_line(item), "  ")
        for group in groups:
            items = [m for m in assessment.monitoring if m.group == group.id]
            if items:
                lines += _wrap(f"- {group.title} ({len(items)} items):", "  ")
                for item in items:
                    lines += _hanging(_monitoring_line(item), "      ")
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


def to_markdown(assessment: Assessment, *, title: str | None = None, expand_groups: bool = False) -> str:
    """A Markdown report (for notes, tickets, and documentation).

    A presentation group is one row of the findings table (its title and its members'
    titles and rule ids) and one item of the monitoring list, with its members nested.
    """
    p = assessment.provenance
    groups = _groups(assessment, expand_groups)
    grouped = {g.id for g in groups}
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
            if f.group in grouped:
                continue
            basis = "; ".join(b.label for b in f.basis) or "—"
            cells: Iterable[str] = (
                f"`{f.rule_id}`",
                f.severity,
                f"**{f.title}**. {f.message}",
                _evidence(f),
                basis,
            )
            out.append("| " + " | ".join(md_escape(c, "table-cell") for c in cells) + " |")
        for group in groups:
            members = assessment.members(group.id)
            listed = "; ".join(
                f"{m.title} (`{m.rule_id}`{', advisory' if m.advisory else ''})" for m in members
            )
            note = f" {group.note}" if group.note else ""
            sources = sorted({e.source for m in members for e in m.evidence})
            basis = "; ".join(sorted({b.label for m in members for b in m.basis})) or "—"
            cells = (
                f"group `{group.id}`",
                _group_severity(members),
                f"**{group.title}** ({len(members)} items).{note} {listed}.",
                ", ".join(sources),
                basis,
            )
            out.append("| " + " | ".join(md_escape(c, "table-cell") for c in cells) + " |")
    else:
        out.append("None.")
    if assessment.dose is not None:
        out += ["", "### Dose", ""]
        out += [f"- {dose_line(o)} (`{o.rule_id}`)" for o in assessment.dose.options]
    if assessment.dose_withheld:
        out += ["", "### Dose", "", f"- {md_escape(assessment.dose_withheld, 'table-cell')}"]
    if assessment.monitoring:
        out += ["", "### Monitoring", ""]
        out += [_md_monitoring(m, "") for m in assessment.monitoring if m.group not in grouped]
        for group in groups:
            items = [m for m in assessment.monitoring if m.group == group.id]
            if items:
                out.append(f"- **{group.title}** ({len(items)} items):")
                out += [_md_monitoring(m, "  ", full=False) for m in items]
    if assessment.data_quality:
        out += ["", "### Data quality", ""]
        out += [f"- **{i.severity}**: {i.message}{_where(i)}" for i in assessment.data_quality]
    out += ["", f"*Rules {p.ruleset} {p.version}, digest `{p.digest}`; ketacds {p.package_version}.*", ""]
    return "\n".join(out)


def _md_monitoring(item: MonitoringItem, indent: str, *, full: bool = True) -> str:
    """A monitoring item: its instruction in full, or (in a group) its title."""
    text = item.instruction if full else item.title
    return f"{indent}- {text}{' — ' + item.timing if item.timing else ''} (`{item.rule_id}`)"


def render(assessment: Assessment, fmt: str, *, title: str | None = None, expand_groups: bool = False) -> str:
    """Render in ``text``, ``markdown`` or ``json`` (JSON always holds every finding whole)."""
    if fmt == "json":
        return assessment.to_json(indent=2) + "\n"
    if fmt == "markdown":
        return to_markdown(assessment, title=title, expand_groups=expand_groups)
    return to_text(assessment, title=title, expand_groups=expand_groups)
