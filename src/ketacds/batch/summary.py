"""What a population run found, counted: statuses, findings, data gaps and bad records.

Workers count their own chunks (:class:`Tally`); the counts are stored with each
chunk, so a resumed run adds up exactly what an uninterrupted one would. The summary
is written as Markdown (with a text bar chart, and the same chart as an SVG file
beside it) and as JSON, and printed at the terminal. Every word of clinical content
(status meanings, rule titles) comes from the ruleset.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from ketacds.models.results import Assessment
from ketacds.ruleset.ir import RuleSet
from ketacds.vocabulary import DATA_GAP, MONITORING

__all__ = ["Summary", "Tally", "render_svg"]

#: How many findings, data gaps and error reasons the summary lists.
TOP = 10
_BAR = 30  # characters of the longest text bar
# Findings of these categories are not ranked among "most frequent findings": data gaps
# have their own table, and monitoring items apply to nearly everyone on a route.
_UNRANKED = (DATA_GAP, MONITORING)


@attrs.define
class Tally:
    """Counts over some records: each assessed patient counts once per finding and gap."""

    statuses: Counter[str] = attrs.field(factory=Counter)
    findings: Counter[str] = attrs.field(factory=Counter)
    gaps: Counter[str] = attrs.field(factory=Counter)
    errors: Counter[str] = attrs.field(factory=Counter)

    def add(self, assessment: Assessment) -> None:
        """Count one assessed patient."""
        self.statuses[assessment.status] += 1
        self.findings.update({f.rule_id for f in assessment.findings})
        self.gaps.update({g.missing for g in assessment.data_gaps})

    def add_error(self, reason: str) -> None:
        """Count one record that could not be assessed."""
        self.errors[reason] += 1

    def update(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        for mine, theirs in zip(
            attrs.astuple(self, recurse=False), attrs.astuple(other, recurse=False), strict=True
        ):
            mine.update(theirs)

    def to_data(self) -> dict[str, dict[str, int]]:
        """Plain data (sorted), as stored with each chunk."""
        return {name: dict(sorted(getattr(self, name).items())) for name in attrs.fields_dict(Tally)}

    @classmethod
    def from_data(cls, data: dict[str, dict[str, int]]) -> Tally:
        """Rebuild from :meth:`to_data`."""
        return cls(**{name: Counter(data.get(name, {})) for name in attrs.fields_dict(Tally)})


@attrs.frozen
class Summary:
    """The summary of one run, ready to render; deterministic for the same input."""

    records: int
    assessed: int
    errors: int
    ruleset: str
    version: str
    digest: str
    #: (status, meaning, count), most serious first, every status of the ruleset.
    statuses: tuple[tuple[str, str, int], ...]
    #: (rule id, title, patients), most frequent first (not data gaps or monitoring).
    findings: tuple[tuple[str, str, int], ...]
    #: (what is missing, patients), most frequent first.
    gaps: tuple[tuple[str, int], ...]
    #: (error reason, records), most frequent first.
    error_reasons: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, tally: Tally, ruleset: RuleSet, digest: str) -> Summary:
        """Summarise ``tally`` with the words of ``ruleset``."""
        titles = {rule.id: rule.title for rule in ruleset.rules}
        ranked = Counter({r: n for r, n in tally.findings.items() if _category(ruleset, r) not in _UNRANKED})
        assessed = sum(tally.statuses.values())
        errors = sum(tally.errors.values())
        return cls(
            records=assessed + errors,
            assessed=assessed,
            errors=errors,
            ruleset=ruleset.name,
            version=ruleset.version,
            digest=digest,
            statuses=tuple(
                (lv.name, lv.meaning, tally.statuses.get(lv.name, 0)) for lv in ruleset.status.levels
            ),
            findings=tuple((rule, titles.get(rule, rule), n) for rule, n in _top(ranked)),
            gaps=_top(tally.gaps),
            error_reasons=_top(tally.errors),
        )

    def to_data(self) -> dict[str, Any]:
        """Plain data for ``summary.json``."""
        return {
            "records": self.records,
            "assessed": self.assessed,
            "errors": self.errors,
            "ruleset": {"name": self.ruleset, "version": self.version, "digest": self.digest},
            "statuses": {status: count for status, _, count in self.statuses},
            "top_findings": [{"rule_id": r, "title": t, "patients": n} for r, t, n in self.findings],
            "top_data_gaps": [{"missing": m, "patients": n} for m, n in self.gaps],
            "top_errors": [{"reason": r, "records": n} for r, n in self.error_reasons],
        }

    def to_markdown(self, *, chart: str | None = None) -> str:
        """The summary as Markdown; ``chart`` names the SVG chart file to link."""
        lines = [
            "# Population assessment summary",
            "",
            f"{self.records} records: {self.assessed} assessed, {self.errors} could not be "
            f"(see `errors.ndjson`). Rules {self.ruleset} {self.version}, digest `{self.digest}`.",
            "",
            "Advisory only: these counts describe what the rules found; each patient's",
            "assessment (in `assessments.ndjson`) carries the basis of every finding.",
            "",
            "## Status",
            "",
        ]
        if chart:
            lines += [f"![Status counts]({chart})", ""]
        lines += ["| status | patients | share | |", "|---|---:|---:|---|"]
        top = max((count for _, _, count in self.statuses), default=0)
        for status, _, count in self.statuses:
            bar = _bar(count, top)
            lines.append(
                f"| {status} | {count} | {_share(count, self.assessed)} | {f'`{bar}`' if bar else ''} |"
            )
        lines += [
            "",
            "## Most frequent findings",
            "",
            "(Data gaps are listed below; monitoring items are not ranked.)",
            "",
        ]
        lines += _table(
            ("rule", "title", "patients", "share"), [(f"`{r}`", t, n) for r, t, n in self.findings], self
        )
        lines += ["", "## Most frequent data gaps", ""]
        lines += _table(("missing", "patients", "share"), list(self.gaps), self)
        lines += ["", "## Records that could not be assessed", ""]
        if self.error_reasons:
            lines += ["| reason | records |", "|---|---:|"]
            lines += [f"| {_cell(reason)} | {n} |" for reason, n in self.error_reasons]
        else:
            lines.append("None.")
        return "\n".join(lines) + "\n"

    def print(self, console: Console) -> None:
        """Print the summary at a terminal."""
        statuses = Table(title="Status", title_justify="left", show_edge=False)
        statuses.add_column("status")
        statuses.add_column("patients", justify="right")
        statuses.add_column("share", justify="right")
        statuses.add_column("")
        top = max((count for _, _, count in self.statuses), default=0)
        for status, _, count in self.statuses:
            statuses.add_row(status, str(count), _share(count, self.assessed), _bar(count, top))
        console.print(statuses)
        if self.findings:
            findings = Table(title="Most frequent findings", title_justify="left", show_edge=False)
            for name in ("rule", "title", "patients"):
                findings.add_column(name, justify="right" if name == "patients" else "left")
            for rule, title, count in self.findings:
                findings.add_row(rule, title, str(count))
            console.print(findings)
        if self.gaps:
            gaps = Table(title="Most frequent data gaps", title_justify="left", show_edge=False)
            gaps.add_column("missing")
            gaps.add_column("patients", justify="right")
            for missing, count in self.gaps:
                gaps.add_row(missing, str(count))
            console.print(gaps)
        console.print(
            f"{self.records} records: {self.assessed} assessed, [bold]{self.errors}[/] could not be"
            + (f" (most often: {self.error_reasons[0][0]})" if self.error_reasons else ""),
            highlight=False,
        )


def _category(ruleset: RuleSet, rule_id: str) -> str | None:
    return next((rule.category for rule in ruleset.rules if rule.id == rule_id), None)


def _top(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    # Most frequent first; ties in name order, so that the summary is deterministic.
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP])


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def _bar(count: int, top: int) -> str:
    return "█" * round(_BAR * count / top) if top else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]], summary: Summary) -> list[str]:
    if not rows:
        return ["None."]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if h in ("patients", "share") else "---" for h in head) + "|",
    ]
    for row in rows:
        count = row[-1]
        cells = [_cell(str(cell)) for cell in row] + [_share(count, summary.assessed)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_svg(summary: Summary) -> str:
    """A horizontal bar chart of the status counts, as a standalone SVG document."""
    row, label_width, bar_width = 26, 150, 360
    height = row * len(summary.statuses) + 40
    top = max((count for _, _, count in summary.statuses), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 90}" height="{height}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="8" y="20" font-weight="bold">Status ({summary.assessed} patients assessed)</text>',
    ]
    for index, (status, _, count) in enumerate(summary.statuses):
        y = 34 + index * row
        width = round(bar_width * count / top)
        parts += [
            f'<text x="8" y="{y + 15}">{html.escape(status)}</text>',
            f'<rect x="{label_width}" y="{y + 3}" width="{width}" height="16" fill="#4a6fa5"/>',
            f'<text x="{label_width + width + 6}" y="{y + 15}">{count}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
