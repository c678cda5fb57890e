"""CDS Hooks 2.0: prefetch templates, and Assessments rendered as cards.

Pure functions of their inputs (no web framework here; ``ketacds.server`` serves them).

Cards, per assessment:

* one card per finding whose severity reaches a status level other than the
  default (contraindications, off-label use, defer, cautions ...), with the rule's
  basis in the detail, ``overrideReasons``, a link to the rule's rendered docs, and
  a suggestion when the rule computed a safer dose for the drafted order;
* one card per presentation group (findings every patient on the route gets, declared
  in the ruleset: routine monitoring), its members listed in the detail with their rule
  ids and sources, its indicator the most serious member's; left out on ``order-sign``
  when that is ``info``, like the summary;
* one card gathering the data gaps (missing data that could change the answer);
* one card for data quality, when part of the record was not read or was read with an
  assumption (errors make it a warning);
* a summary card (``info``): the status word and its meaning, dose options,
  monitoring and the informational findings not in a group, and the groups' titles. Left
  out on ``order-sign`` when the
  other cards say everything, so signing is only interrupted for a reason.

Indicators follow the status level the finding's severity maps to in the ruleset
(:data:`ketacds.vocabulary.INDICATORS`); a level the table does not know is a ``warning``, never ``info``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ketacds.adapters.card_parts import RulesetParts, parts_for, truncate_summary
from ketacds.engine.numbers import to_json_number
from ketacds.markup import md_escape
from ketacds.models.quality import DataQualityIssue
from ketacds.models.results import Assessment, DoseOption, Finding, FindingGroup
from ketacds.reporting import dose_line
from ketacds.ruleset.ir import RuleSet
from ketacds.vocabulary import (
    DATA_GAP,
    ESKETAMINE_NASAL,
    INDICATORS,
    KETAMINE_INTRANASAL,
    KETAMINE_IV,
    KETAMINE_OTHER,
    MONITORING,
)
from ketacds.vocabulary import INDICATOR_RANK as _INDICATOR_RANK

__all__ = [
    "HOOKS",
    "INDICATORS",
    "OVERRIDE_REASONS",
    "ROUTE_LABELS",
    "CardContext",
    "RenderedCard",
    "cards_for",
    "error_card",
    "prefetch_templates",
    "render_template",
    "truncate_summary",
]

#: The hooks the service answers.
HOOKS: tuple[str, ...] = ("patient-view", "order-select", "order-sign")


#: Reasons a clinician may give for overriding a warning or critical card.
OVERRIDE_REASON_SYSTEM = "urn:ketacds:cds-hooks:override-reason"
OVERRIDE_REASONS: tuple[tuple[str, str], ...] = (
    ("benefit-outweighs-risk", "Benefit outweighs the risk (decision documented)"),
    ("specialist-reviewed", "Reviewed and approved by a specialist"),
    ("record-incorrect", "The record is wrong or out of date"),
    ("already-addressed", "Already addressed"),
)

#: Short names of the planned routes, for card summaries.
ROUTE_LABELS: dict[str, str] = {
    ESKETAMINE_NASAL: "Esketamine nasal spray",
    KETAMINE_IV: "IV ketamine",
    KETAMINE_OTHER: "Ketamine (IM, SC, oral or sublingual)",
    KETAMINE_INTRANASAL: "Intranasal racemic ketamine",
}

_QUALITY_LINES = 30
_UCUM = "http://unitsofmeasure.org"
_ADVISORY = "_Advisory only: ketacds informs a clinician; it does not order treatment._"


def prefetch_templates(observation_codes: Iterable[str]) -> dict[str, str]:
    """The prefetch templates of every service: the patient and what the rules read."""
    return dict(_templates(tuple(sorted(observation_codes))))


@functools.lru_cache(maxsize=8)
def _templates(observation_codes: tuple[str, ...]) -> dict[str, str]:
    """:func:`prefetch_templates` of sorted codes, written once per mapping (given out as copies)."""
    codes = ",".join(f"http://loinc.org|{code}" for code in observation_codes)
    return {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "medications": "MedicationRequest?patient={{context.patientId}}",
        # (what the patient says they take: read like a MedicationRequest, so asked for too)
        "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
        "observations": f"Observation?patient={{{{context.patientId}}}}&code={codes}&_sort=-date",
        "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    }


def render_template(template: str, context: Mapping[str, Any], quote: Callable[[str], str]) -> str | None:
    """Fill ``{{context.x}}`` tokens (each value passed through ``quote``); ``None`` if one is missing."""
    out = template
    while "{{" in out:
        start = out.index("{{")
        end = out.find("}}", start)
        if end < 0:
            return None
        token = out[start + 2 : end].strip()
        if not token.startswith("context."):
            return None
        value = context.get(token.removeprefix("context."))
        if not isinstance(value, str) or not value:
            return None
        out = out[:start] + quote(value) + out[end + 2 :]
    return out


@attrs.frozen(kw_only=True)
class CardContext:
    """What the cards need besides the Assessment.

    Attributes:
        hook: the hook being answered.
        ruleset: the loaded rules (titles, files for the doc links).
        docs_url: base URL of the rendered rule docs (``.../docs/rules``).
        mapping_version: version and digest of the FHIR reading rules, for the detail footer.
        uuid: makes each card's and suggestion's uuid.
        order_resource: the drafted MedicationRequest being assessed (order hooks).
        order_key: its ``MedicationRequest/id``.
    """

    hook: str
    ruleset: RuleSet
    docs_url: str
    mapping_version: str
    uuid: Callable[[], str]
    order_resource: Mapping[str, Any] | None = None
    order_key: str | None = None


_OVERRIDE_REASONS = tuple(
    {"system": OVERRIDE_REASON_SYSTEM, "code": code, "display": display} for code, display in OVERRIDE_REASONS
)


def _override_reasons() -> list[dict[str, str]]:
    return [dict(reason) for reason in _OVERRIDE_REASONS]


def _most_serious(indicators: Iterable[str]) -> str:
    return max(indicators, key=lambda i: -_INDICATOR_RANK[i])


class _Cards:
    """The cards of one Assessment: the per-ruleset parts, and what this assessment adds.

    Everything every card of the assessment repeats (the source label, the detail
    footer) is rendered once here.
    """

    __slots__ = ("assessment", "ctx", "footer", "label", "parts")

    def __init__(self, assessment: Assessment, ctx: CardContext) -> None:
        self.assessment = assessment
        self.ctx = ctx
        self.parts: RulesetParts = parts_for(ctx.ruleset, ctx.docs_url)
        p = assessment.provenance
        self.label = f"ketacds {p.ruleset} {p.version} (rules sha256 {p.digest[:12]})"
        self.footer = "\n" + "\n".join(self._footer())

    def _footer(self) -> list[str]:
        assessment, p = self.assessment, self.assessment.provenance
        quality = ""
        count = sum(1 for i in assessment.data_quality if i.severity != "info")
        if count:
            quality = f" {count} data-quality issue(s): see the data-quality card."
        return [
            "",
            f"Overall: **{assessment.status}** for `{p.route}` in {p.jurisdiction}"
            f"{f' (following the {p.follows} label)' if p.follows else ''} at {p.now}.{quality}",
            "",
            f"Rules {p.ruleset} {p.version}, sha256 `{p.digest}`; ketacds {p.package_version}; "
            f"FHIR reading {self.ctx.mapping_version}.",
            "",
            _ADVISORY,
        ]

    def detail(self, lines: list[str]) -> str:
        """A card's detail: its own lines, then the footer every card of the assessment ends with."""
        return "\n".join(lines) + self.footer

    def finding_card(self, finding: Finding) -> dict[str, Any]:
        parts, assessment = self.parts, self.assessment
        texts = parts.texts(finding)
        indicator = parts.indicator(finding.severity)
        lines = [texts.head]
        lines += [f"- {md_escape(b.label, 'record')}" for b in finding.basis] or [
            "- (no single input: the rule applies to this route)"
        ]
        lines.append(texts.evidence)
        if assessment.data_gaps:
            lines += ["", "**Missing data that could change the answer:**"]
            lines += [f"- {g.missing}: {g.message} ({g.rule_id})" for g in assessment.data_gaps]
        card: dict[str, Any] = {
            "uuid": self.ctx.uuid(),
            "summary": texts.summary,
            "indicator": indicator,
            "detail": self.detail(lines),
            "source": parts.source(self.label, finding.rule_id),
            "links": [parts.link(finding.rule_id)],
        }
        if indicator != "info":
            card["overrideReasons"] = _override_reasons()
        suggestions = _suggestions(self.ctx, finding, assessment)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        return card

    def gaps_card(self, gaps: Sequence[Finding]) -> dict[str, Any]:
        parts, assessment = self.parts, self.assessment
        missing = [g.missing for g in assessment.data_gaps]
        first_gap: dict[str, Any] = {}
        for g in assessment.data_gaps:
            first_gap.setdefault(g.rule_id, g)
        lines = ["**Missing data that could change the answer** (the status is at best *incomplete*):", ""]
        for finding in gaps:
            gap = first_gap.get(finding.rule_id)
            lines.append(
                f"- **{gap.missing if gap else finding.title}** ({finding.rule_id}): {finding.message}"
            )
            if finding.management:
                lines.append(f"  {finding.management}")
            if finding.basis:
                lines.append(
                    f"  Because of: {'; '.join(md_escape(b.label, 'record') for b in finding.basis)}"
                )
        return {
            "uuid": self.ctx.uuid(),
            "summary": truncate_summary(f"Missing data could change the answer: {', '.join(missing)}"),
            "indicator": _most_serious(parts.indicator(f.severity) for f in gaps),
            "detail": self.detail(lines),
            "source": parts.source(self.label),
            "overrideReasons": _override_reasons(),
            "links": [parts.link(f.rule_id) for f in gaps],
        }

    def quality_card(self) -> dict[str, Any] | None:
        assessment = self.assessment
        shown = [i for i in assessment.data_quality if i.severity != "info"]
        if not shown:
            return None
        errors = sum(1 for i in shown if i.severity == "error")
        if errors:
            summary = f"{errors} part(s) of the record could not be read; the advice may miss them"
        else:
            summary = f"{len(shown)} record item(s) were read with an assumption"
        lines = ["**What the record did not let ketacds read** (or read only with an assumption):", ""]
        lines += [_quality_line(i) for i in shown[:_QUALITY_LINES]]
        if len(shown) > _QUALITY_LINES:
            lines.append(
                f"- … and {len(shown) - _QUALITY_LINES} more (all are in the Assessment's data_quality)"
            )
        skipped = [i for i in assessment.data_quality if i.severity == "info"]
        if skipped:
            lines += ["", "Left out by design:"] + [_quality_line(i) for i in skipped[:_QUALITY_LINES]]
        return {
            "uuid": self.ctx.uuid(),
            "summary": truncate_summary(summary),
            "indicator": "warning" if errors else "info",
            "detail": self.detail(lines),
            "source": self.parts.source(self.label),
        }

    def summary_card(self, infos: Sequence[Finding]) -> dict[str, Any]:
        assessment, ctx, parts = self.assessment, self.ctx, self.parts
        p = assessment.provenance
        route = ROUTE_LABELS.get(p.route, p.route)
        lines = [f"**{assessment.status}**: {assessment.status_meaning}", ""]
        if ctx.order_key:
            lines += [f"Assessed for the drafted order `{md_escape(ctx.order_key, 'record')}`.", ""]
        if assessment.dose is not None:
            lines += (
                ["**Dose:**"] + [f"- {dose_line(o)} ({o.rule_id})" for o in assessment.dose.options] + [""]
            )
        if assessment.dose_withheld:
            lines += ["**Dose:**", f"- {md_escape(assessment.dose_withheld, 'record')}", ""]
        monitoring = [m for m in assessment.monitoring if m.group is None]
        if monitoring:
            lines += ["**Monitoring:**"]
            lines += [
                f"- {m.title}{' (' + m.timing + ')' if m.timing else ''}: {m.instruction} ({m.rule_id})"
                for m in monitoring
            ]
            lines.append("")
        if assessment.groups:
            lines += ["**Routine items for every patient on this route** (each group on its own card):"]
            lines += [f"- {g.title} ({len(assessment.members(g.id))} items)" for g in assessment.groups]
            lines.append("")
        other = [f for f in infos if f.category != MONITORING]
        if other:
            lines += ["**Also noted:**"] + [f"- {f.title} ({f.rule_id}): {f.message}" for f in other]
        counted = sum(1 for f in assessment.findings if parts.level(f.severity) is not None)
        noun = "finding" if counted == 1 else "findings"
        return {
            "uuid": ctx.uuid(),
            "summary": truncate_summary(
                f"{route}: {assessment.status} ({counted} {noun} to review) — ketacds"
            ),
            "indicator": "info",
            "detail": self.detail(lines),
            "source": parts.source(self.label),
            "links": [{"label": "All rules (rendered)", "url": parts.index_url, "type": "absolute"}],
        }

    def group_indicator(self, members: Sequence[Finding]) -> str:
        """A group card's indicator: its most serious member's."""
        return _most_serious(self.parts.indicator(f.severity) for f in members)

    def group_card(self, group: FindingGroup, members: Sequence[Finding]) -> dict[str, Any]:
        """One card for a presentation group: its members, each with rule id, message and sources."""
        assessment, parts = self.assessment, self.parts
        route = ROUTE_LABELS.get(assessment.provenance.route, assessment.provenance.route)
        indicator = self.group_indicator(members)
        timing = {m.rule_id: m.timing for m in assessment.monitoring if m.timing}
        lines = [f"**{group.title}** ({len(members)} items)", ""]
        if group.note:
            lines += [group.note, ""]
        for finding in members:
            texts = parts.texts(finding)
            when = f" — {timing[finding.rule_id]}" if finding.rule_id in timing else ""
            lines.append(f"{texts.member}{when}{texts.message}")
            if texts.management is not None:
                lines.append(texts.management)
            lines.append(texts.sources)
        source = parts.source(self.label)
        categories = {f.category for f in members}
        if len(categories) == 1:
            (category,) = categories
            source["topic"] = parts.topic(category)
        card: dict[str, Any] = {
            "uuid": self.ctx.uuid(),
            "summary": truncate_summary(f"{route}: {group.title} ({len(members)} items)"),
            "indicator": indicator,
            "detail": self.detail(lines),
            "source": source,
            "links": [parts.link(f.rule_id) for f in members],
        }
        if indicator != "info":
            card["overrideReasons"] = _override_reasons()
        return card


def _quality_line(issue: DataQualityIssue) -> str:
    where = " ".join(f"`{md_escape(part, 'record')}`" for part in (issue.resource, issue.path) if part)
    return f"- {issue.severity}: {md_escape(issue.message, 'record')}{' (' + where + ')' if where else ''}"


def _suggestions(ctx: CardContext, finding: Finding, assessment: Assessment) -> list[dict[str, Any]]:
    if ctx.order_resource is None or assessment.dose is None:
        return []
    out = []
    for option in assessment.dose.options:
        if option.rule_id != finding.rule_id or option.dose_mg is None:
            continue
        resource = _with_dose(ctx.order_resource, option)
        label = f"Change the dose to {option.dose_mg} mg ({option.label})"
        out.append(
            {
                "label": truncate_summary(label),
                "uuid": ctx.uuid(),
                "isRecommended": True,
                "actions": [
                    {
                        "type": "update",
                        "description": f"Set the ordered dose to {option.dose_mg} mg",
                        "resource": resource,
                    }
                ],
            }
        )
    return out


def _with_dose(resource: Mapping[str, Any], option: DoseOption) -> dict[str, Any]:
    """The drafted MedicationRequest with its first dosage's dose replaced (R4 doseAndRate)."""
    assert option.dose_mg is not None  # only computed doses are suggested
    updated: dict[str, Any] = _json_copy(dict(resource))
    dosages = updated.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        dosages = [{}]
    first = {k: v for k, v in dosages[0].items() if k not in ("doseQuantity", "rateQuantity")}
    quantity = {"value": to_json_number(option.dose_mg), "unit": "mg", "system": _UCUM, "code": "mg"}
    rates = first.get("doseAndRate")
    rate = dict(rates[0]) if isinstance(rates, list) and rates and isinstance(rates[0], dict) else {}
    rate.pop("doseRange", None)
    rate["doseQuantity"] = quantity
    first["doseAndRate"] = [rate]
    updated["dosageInstruction"] = [first, *dosages[1:]]
    return updated


#: The JSON types :func:`_json_copy` gives out as they are (immutable).
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts and lists copied, scalars shared; anything else deep-copied).

    The request's JSON has no shared or cyclic parts, so this gives what
    :func:`copy.deepcopy` gives, without its memo and dispatch per value.
    """
    kind = type(value)
    if kind is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if kind is list:
        return [_json_copy(v) for v in value]
    if kind in _JSON_SCALARS:
        return value
    return copy.deepcopy(value)


@attrs.frozen
class RenderedCard:
    """A card and the ids of the rules behind it (recorded, to read feedback by rule)."""

    card: dict[str, Any]
    rule_ids: tuple[str, ...] = ()


def cards_for(assessment: Assessment, ctx: CardContext) -> list[RenderedCard]:
    """The CDS Hooks cards for one Assessment, most serious first."""
    render = _Cards(assessment, ctx)
    level = render.parts.level
    actionable: list[Finding] = []
    gaps: list[Finding] = []
    infos: list[Finding] = []
    grouped = {group.id: assessment.members(group.id) for group in assessment.groups}
    for finding in assessment.findings:
        if finding.group in grouped:
            continue  # on its group's card
        if level(finding.severity) is None:
            infos.append(finding)
        elif finding.category == DATA_GAP:
            gaps.append(finding)
        else:
            actionable.append(finding)
    cards = [RenderedCard(render.finding_card(f), (f.rule_id,)) for f in actionable]
    if gaps:
        cards.append(RenderedCard(render.gaps_card(gaps), tuple(f.rule_id for f in gaps)))
    quality = render.quality_card()
    if quality is not None:
        cards.append(RenderedCard(quality))
    for group in assessment.groups:
        members = grouped[group.id]
        if ctx.hook == "order-sign" and render.group_indicator(members) == "info":
            ctx.uuid()  # (not shown at signing: only its uuid is drawn, as when it was rendered)
            continue
        card = render.group_card(group, members)
        cards.append(RenderedCard(card, tuple(f.rule_id for f in members)))
    if ctx.hook != "order-sign":
        # Last of the info cards: the overview, after what it sums up.
        cards.append(RenderedCard(render.summary_card(infos), tuple(f.rule_id for f in infos)))
    return sorted(cards, key=lambda c: _INDICATOR_RANK[c.card["indicator"]])


def error_card(
    *, summary: str, detail: str, uuid: Callable[[], str], source_label: str, indicator: str = "warning"
) -> dict[str, Any]:
    """A card saying that ketacds could not give advice, and why."""
    return {
        "uuid": uuid(),
        "summary": truncate_summary(summary),
        "indicator": indicator,
        "detail": f"{detail}\n\n{_ADVISORY}",
        "source": {"label": source_label},
    }
