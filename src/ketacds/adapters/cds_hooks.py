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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ketacds.engine.numbers import to_json_number
from ketacds.markup import md_escape
from ketacds.models.quality import DataQualityIssue
from ketacds.models.results import Assessment, DoseOption, Finding, FindingGroup
from ketacds.reporting import dose_line
from ketacds.ruleset.ir import Rule, RuleSet
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

_SUMMARY_LIMIT = 140
_QUALITY_LINES = 30
_UCUM = "http://unitsofmeasure.org"
_ADVISORY = "_Advisory only: ketacds informs a clinician; it does not order treatment._"


def prefetch_templates(observation_codes: Iterable[str]) -> dict[str, str]:
    """The prefetch templates of every service: the patient and what the rules read."""
    codes = ",".join(f"http://loinc.org|{code}" for code in sorted(observation_codes))
    return {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "medications": "MedicationRequest?patient={{context.patientId}}",
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


def truncate_summary(text: str) -> str:
    """A card summary shorter than 140 characters (the spec's limit), cut on a word."""
    text = " ".join(text.split())
    if len(text) < _SUMMARY_LIMIT:
        return text
    cut = text[: _SUMMARY_LIMIT - 2].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


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


def _indicator(ruleset: RuleSet, severity: str) -> str:
    level = dict(ruleset.status.severities).get(severity)
    return INDICATORS.get(level or "", "warning")


def _rule_link(ctx: CardContext, rule: Rule | None, rule_id: str) -> dict[str, str]:
    page = (rule.file or "index.yaml").rsplit("/", 1)[-1].removesuffix(".yaml") if rule else "index"
    title = f"Rule {rule_id}: {rule.title}" if rule else f"Rule {rule_id}"
    return {
        "label": truncate_summary(title),
        "url": f"{ctx.docs_url.rstrip('/')}/{page}.md#{rule_id.lower()}",
        "type": "absolute",
    }


def _source(ctx: CardContext, assessment: Assessment, rule: Rule | None = None) -> dict[str, Any]:
    p = assessment.provenance
    source: dict[str, Any] = {"label": f"ketacds {p.ruleset} {p.version} (rules sha256 {p.digest[:12]})"}
    source["url"] = _rule_link(ctx, rule, rule.id)["url"] if rule else f"{ctx.docs_url.rstrip('/')}/index.md"
    if rule is not None:
        source["topic"] = {
            "system": "urn:ketacds:cds-hooks:topic",
            "code": rule.category,
            "display": rule.category.replace("-", " "),
        }
    return source


def _override_reasons() -> list[dict[str, str]]:
    return [
        {"system": OVERRIDE_REASON_SYSTEM, "code": code, "display": display}
        for code, display in OVERRIDE_REASONS
    ]


def _footer(ctx: CardContext, assessment: Assessment) -> list[str]:
    p = assessment.provenance
    quality = ""
    if any(i.severity != "info" for i in assessment.data_quality):
        count = sum(1 for i in assessment.data_quality if i.severity != "info")
        quality = f" {count} data-quality issue(s): see the data-quality card."
    return [
        "",
        f"Overall: **{assessment.status}** for `{p.route}` in {p.jurisdiction}"
        f"{f' (following the {p.follows} label)' if p.follows else ''} at {p.now}.{quality}",
        "",
        f"Rules {p.ruleset} {p.version}, sha256 `{p.digest}`; ketacds {p.package_version}; "
        f"FHIR reading {ctx.mapping_version}.",
        "",
        _ADVISORY,
    ]


def _finding_detail(ctx: CardContext, finding: Finding, assessment: Assessment) -> str:
    advisory = ", advisory only (unconfirmed)" if finding.advisory else ""
    lines = [
        f"**{finding.title}** ({finding.rule_id}; {finding.category}; severity {finding.severity}; "
        f"confidence {finding.confidence}{advisory})",
        "",
        finding.message,
    ]
    if finding.management:
        lines += ["", f"**Management:** {finding.management}"]
    lines += ["", "**Because of (the inputs used):**"]
    lines += [f"- {md_escape(b.label, 'record')}" for b in finding.basis] or [
        "- (no single input: the rule applies to this route)"
    ]
    lines += ["", "**Evidence:**"]
    lines += [f"- {e.source}: {e.title}{' — ' + e.section if e.section else ''}" for e in finding.evidence]
    if assessment.data_gaps:
        lines += ["", "**Missing data that could change the answer:**"]
        lines += [f"- {g.missing}: {g.message} ({g.rule_id})" for g in assessment.data_gaps]
    return "\n".join(lines + _footer(ctx, assessment))


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
    updated: dict[str, Any] = copy.deepcopy(dict(resource))
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


def _finding_card(
    ctx: CardContext, finding: Finding, assessment: Assessment, rules: Mapping[str, Rule]
) -> dict[str, Any]:
    rule = rules.get(finding.rule_id)
    indicator = _indicator(ctx.ruleset, finding.severity)
    card: dict[str, Any] = {
        "uuid": ctx.uuid(),
        "summary": truncate_summary(f"{finding.title} ({finding.rule_id})"),
        "indicator": indicator,
        "detail": _finding_detail(ctx, finding, assessment),
        "source": _source(ctx, assessment, rule),
        "links": [_rule_link(ctx, rule, finding.rule_id)],
    }
    if indicator != "info":
        card["overrideReasons"] = _override_reasons()
    suggestions = _suggestions(ctx, finding, assessment)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    return card


def _gaps_card(
    ctx: CardContext, gaps: Sequence[Finding], assessment: Assessment, rules: Mapping[str, Rule]
) -> dict[str, Any]:
    missing = [g.missing for g in assessment.data_gaps]
    lines = ["**Missing data that could change the answer** (the status is at best *incomplete*):", ""]
    for finding in gaps:
        gap = next((g for g in assessment.data_gaps if g.rule_id == finding.rule_id), None)
        lines.append(f"- **{gap.missing if gap else finding.title}** ({finding.rule_id}): {finding.message}")
        if finding.management:
            lines.append(f"  {finding.management}")
        if finding.basis:
            lines.append(f"  Because of: {'; '.join(md_escape(b.label, 'record') for b in finding.basis)}")
    return {
        "uuid": ctx.uuid(),
        "summary": truncate_summary(f"Missing data could change the answer: {', '.join(missing)}"),
        "indicator": max(
            (_indicator(ctx.ruleset, f.severity) for f in gaps), key=lambda i: -_INDICATOR_RANK[i]
        ),
        "detail": "\n".join(lines + _footer(ctx, assessment)),
        "source": _source(ctx, assessment),
        "overrideReasons": _override_reasons(),
        "links": [_rule_link(ctx, rules.get(f.rule_id), f.rule_id) for f in gaps],
    }


def _quality_card(ctx: CardContext, assessment: Assessment) -> dict[str, Any] | None:
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
        lines.append(f"- … and {len(shown) - _QUALITY_LINES} more (all are in the Assessment's data_quality)")
    skipped = [i for i in assessment.data_quality if i.severity == "info"]
    if skipped:
        lines += ["", "Left out by design:"] + [_quality_line(i) for i in skipped[:_QUALITY_LINES]]
    return {
        "uuid": ctx.uuid(),
        "summary": truncate_summary(summary),
        "indicator": "warning" if errors else "info",
        "detail": "\n".join(lines + _footer(ctx, assessment)),
        "source": _source(ctx, assessment),
    }


def _quality_line(issue: DataQualityIssue) -> str:
    where = " ".join(f"`{md_escape(part, 'record')}`" for part in (issue.resource, issue.path) if part)
    return f"- {issue.severity}: {md_escape(issue.message, 'record')}{' (' + where + ')' if where else ''}"


def _summary_card(ctx: CardContext, assessment: Assessment, infos: Sequence[Finding]) -> dict[str, Any]:
    p = assessment.provenance
    route = ROUTE_LABELS.get(p.route, p.route)
    lines = [f"**{assessment.status}**: {assessment.status_meaning}", ""]
    if ctx.order_key:
        lines += [f"Assessed for the drafted order `{md_escape(ctx.order_key, 'record')}`.", ""]
    if assessment.dose is not None:
        lines += ["**Dose:**"] + [f"- {dose_line(o)} ({o.rule_id})" for o in assessment.dose.options] + [""]
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
    counted = sum(1 for f in assessment.findings if ctx.ruleset.status.status_of(f.severity) is not None)
    noun = "finding" if counted == 1 else "findings"
    return {
        "uuid": ctx.uuid(),
        "summary": truncate_summary(f"{route}: {assessment.status} ({counted} {noun} to review) — ketacds"),
        "indicator": "info",
        "detail": "\n".join(lines + _footer(ctx, assessment)),
        "source": _source(ctx, assessment),
        "links": [
            {
                "label": "All rules (rendered)",
                "url": f"{ctx.docs_url.rstrip('/')}/index.md",
                "type": "absolute",
            }
        ],
    }


def _group_card(
    ctx: CardContext,
    group: FindingGroup,
    members: Sequence[Finding],
    assessment: Assessment,
    rules: Mapping[str, Rule],
) -> dict[str, Any]:
    """One card for a presentation group: its members, each with rule id, message and sources."""
    route = ROUTE_LABELS.get(assessment.provenance.route, assessment.provenance.route)
    indicator = max((_indicator(ctx.ruleset, f.severity) for f in members), key=lambda i: -_INDICATOR_RANK[i])
    timing = {m.rule_id: m.timing for m in assessment.monitoring if m.timing}
    lines = [f"**{group.title}** ({len(members)} items)", ""]
    if group.note:
        lines += [group.note, ""]
    for finding in members:
        advisory = ", advisory only (unconfirmed)" if finding.advisory else ""
        when = f" — {timing[finding.rule_id]}" if finding.rule_id in timing else ""
        lines.append(
            f"- **{finding.title}** ({finding.rule_id}; {finding.severity}; confidence "
            f"{finding.confidence}{advisory}){when}: {finding.message}"
        )
        if finding.management:
            lines.append(f"  Management: {finding.management}")
        lines.append(
            "  Sources: "
            + "; ".join(f"{e.source}{' ' + e.section if e.section else ''}" for e in finding.evidence)
        )
    source = _source(ctx, assessment)
    categories = {f.category for f in members}
    if len(categories) == 1:
        (category,) = categories
        source["topic"] = {
            "system": "urn:ketacds:cds-hooks:topic",
            "code": category,
            "display": category.replace("-", " "),
        }
    card: dict[str, Any] = {
        "uuid": ctx.uuid(),
        "summary": truncate_summary(f"{route}: {group.title} ({len(members)} items)"),
        "indicator": indicator,
        "detail": "\n".join(lines + _footer(ctx, assessment)),
        "source": source,
        "links": [_rule_link(ctx, rules.get(f.rule_id), f.rule_id) for f in members],
    }
    if indicator != "info":
        card["overrideReasons"] = _override_reasons()
    return card


@attrs.frozen
class RenderedCard:
    """A card and the ids of the rules behind it (recorded, to read feedback by rule)."""

    card: dict[str, Any]
    rule_ids: tuple[str, ...] = ()


def cards_for(assessment: Assessment, ctx: CardContext) -> list[RenderedCard]:
    """The CDS Hooks cards for one Assessment, most serious first."""
    rules = {rule.id: rule for rule in ctx.ruleset.rules}
    actionable: list[Finding] = []
    gaps: list[Finding] = []
    infos: list[Finding] = []
    grouped = {group.id: assessment.members(group.id) for group in assessment.groups}
    for finding in assessment.findings:
        level = ctx.ruleset.status.status_of(finding.severity)
        if finding.group in grouped:
            continue  # on its group's card
        if level is None:
            infos.append(finding)
        elif finding.category == DATA_GAP:
            gaps.append(finding)
        else:
            actionable.append(finding)
    cards = [RenderedCard(_finding_card(ctx, f, assessment, rules), (f.rule_id,)) for f in actionable]
    if gaps:
        cards.append(RenderedCard(_gaps_card(ctx, gaps, assessment, rules), tuple(f.rule_id for f in gaps)))
    quality = _quality_card(ctx, assessment)
    if quality is not None:
        cards.append(RenderedCard(quality))
    for group in assessment.groups:
        members = grouped[group.id]
        card = _group_card(ctx, group, members, assessment, rules)
        if ctx.hook != "order-sign" or card["indicator"] != "info":
            cards.append(RenderedCard(card, tuple(f.rule_id for f in members)))
    if ctx.hook != "order-sign":
        # Last of the info cards: the overview, after what it sums up.
        cards.append(RenderedCard(_summary_card(ctx, assessment, infos), tuple(f.rule_id for f in infos)))
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
