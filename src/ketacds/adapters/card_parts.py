"""The parts of the CDS Hooks cards that do not depend on the patient, computed once.

:func:`ketacds.adapters.cds_hooks.cards_for` renders every Assessment of every hook
call. Much of a card is the same for every patient: a rule's link to its rendered docs,
its source's ``url`` and ``topic``, the card indicator of a severity, and the text a
finding of a rule always shows (its title line, management, evidence and sources). A
:class:`RulesetParts` holds these for one ruleset and docs URL; :func:`parts_for` keeps
a few of them (one per ruleset and docs URL a worker serves), so a hook call only
renders what depends on the patient.

The texts of a finding are remembered by rule id together with everything they are
made of (title, message, severity, evidence ...): a finding whose fields differ from
the remembered ones gets its texts rendered afresh, so a remembered text is always the
one the finding would render. Every part handed out is a fresh ``dict`` or an immutable
string: a card never shares a mutable part with another card.
"""

from __future__ import annotations

from typing import Any

from ketacds.models.results import Finding
from ketacds.ruleset.ir import Rule, RuleSet
from ketacds.vocabulary import INDICATORS

__all__ = ["FindingTexts", "RulesetParts", "parts_for", "rule_link", "truncate_summary"]

_SUMMARY_LIMIT = 140
_TOPIC_SYSTEM = "urn:ketacds:cds-hooks:topic"
#: How many :class:`RulesetParts` a process keeps (one per ruleset and docs URL it serves).
_KEPT = 8


def truncate_summary(text: str) -> str:
    """A card summary shorter than 140 characters (the spec's limit), cut on a word."""
    text = " ".join(text.split())
    if len(text) < _SUMMARY_LIMIT:
        return text
    cut = text[: _SUMMARY_LIMIT - 2].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def rule_link(docs_url: str, rule: Rule | None, rule_id: str) -> dict[str, str]:
    """The link to a rule's rendered docs (its file's page, anchored at the rule)."""
    page = (rule.file or "index.yaml").rsplit("/", 1)[-1].removesuffix(".yaml") if rule else "index"
    title = f"Rule {rule_id}: {rule.title}" if rule else f"Rule {rule_id}"
    return {
        "label": truncate_summary(title),
        "url": f"{docs_url.rstrip('/')}/{page}.md#{rule_id.lower()}",
        "type": "absolute",
    }


def topic(category: str) -> dict[str, str]:
    """A card source's ``topic``: the category of its rule(s)."""
    return {"system": _TOPIC_SYSTEM, "code": category, "display": category.replace("-", " ")}


class FindingTexts:
    """What a finding shows on any card, whatever the patient (basis and timing aside).

    Attributes:
        summary: the finding card's summary.
        head: the finding card's detail up to the basis heading.
        evidence: the finding card's evidence lines, under their heading.
        member: a group card's line for the finding, before its timing.
        message: the rest of that line, after the timing (``: message``).
        management: the indented management line of group and gaps cards (or ``None``).
        sources: a group card's indented sources line.
    """

    __slots__ = ("evidence", "head", "management", "member", "message", "sources", "summary")

    def __init__(self, finding: Finding) -> None:
        advisory = ", advisory only (unconfirmed)" if finding.advisory else ""
        self.summary = truncate_summary(f"{finding.title} ({finding.rule_id})")
        head = [
            f"**{finding.title}** ({finding.rule_id}; {finding.category}; severity {finding.severity}; "
            f"confidence {finding.confidence}{advisory})",
            "",
            finding.message,
        ]
        if finding.management:
            head += ["", f"**Management:** {finding.management}"]
        head += ["", "**Because of (the inputs used):**"]
        self.head = "\n".join(head)
        self.evidence = "\n".join(
            ["", "**Evidence:**"]
            + [f"- {e.source}: {e.title}{' — ' + e.section if e.section else ''}" for e in finding.evidence]
        )
        self.member = (
            f"- **{finding.title}** ({finding.rule_id}; {finding.severity}; confidence "
            f"{finding.confidence}{advisory})"
        )
        self.message = f": {finding.message}"
        self.management = f"  Management: {finding.management}" if finding.management else None
        self.sources = "  Sources: " + "; ".join(
            f"{e.source}{' ' + e.section if e.section else ''}" for e in finding.evidence
        )


def _key(finding: Finding) -> tuple[Any, ...]:
    """Everything :class:`FindingTexts` is made of, the rule id aside."""
    return (
        finding.title,
        finding.category,
        finding.severity,
        finding.confidence,
        finding.advisory,
        finding.message,
        finding.management,
        finding.evidence,
    )


class RulesetParts:
    """The patient-independent parts of the cards of one ruleset, served at one docs URL.

    Args:
        ruleset: the loaded rules.
        docs_url: base URL of the rendered rule docs (``.../docs/rules``).
    """

    __slots__ = (
        "_indicators",
        "_levels",
        "_links",
        "_texts",
        "_topics",
        "docs_url",
        "index_url",
        "rules",
        "ruleset",
    )

    def __init__(self, ruleset: RuleSet, docs_url: str) -> None:
        self.ruleset = ruleset
        self.docs_url = docs_url
        self.rules: dict[str, Rule] = {rule.id: rule for rule in ruleset.rules}
        self.index_url = f"{docs_url.rstrip('/')}/index.md"
        severities = dict(ruleset.status.severities)
        self._indicators = {s: INDICATORS.get(level or "", "warning") for s, level in severities.items()}
        self._levels = {s: ruleset.status.status_of(s) for s in severities}
        self._links = {rule_id: rule_link(docs_url, rule, rule_id) for rule_id, rule in self.rules.items()}
        self._topics = {rule.category: topic(rule.category) for rule in ruleset.rules}
        self._texts: dict[str, tuple[tuple[Any, ...], FindingTexts]] = {}

    def indicator(self, severity: str) -> str:
        """The card indicator of a severity's status level (``warning`` for a level not known)."""
        known = self._indicators.get(severity)
        return known if known is not None else INDICATORS.get("", "warning")

    def level(self, severity: str) -> str | None:
        """The status a severity leads to, or ``None`` when it adds nothing to the status."""
        return self._levels.get(severity)

    def link(self, rule_id: str) -> dict[str, str]:
        """The link to a rule's rendered docs (a fresh dict)."""
        known = self._links.get(rule_id)
        return dict(known) if known is not None else rule_link(self.docs_url, None, rule_id)

    def topic(self, category: str) -> dict[str, str]:
        """A card source's ``topic`` for a category (a fresh dict)."""
        known = self._topics.get(category)
        return dict(known) if known is not None else topic(category)

    def source(self, label: str, rule_id: str | None = None) -> dict[str, Any]:
        """A card's ``source``: the ruleset's label, and the rule's docs and topic when there is one."""
        rule = self.rules.get(rule_id) if rule_id is not None else None
        if rule is None:
            return {"label": label, "url": self.index_url}
        return {"label": label, "url": self._links[rule.id]["url"], "topic": self.topic(rule.category)}

    def texts(self, finding: Finding) -> FindingTexts:
        """The patient-independent texts of a finding, rendered once per rule and content."""
        key = _key(finding)
        known = self._texts.get(finding.rule_id)
        if known is not None and known[0] == key:
            return known[1]
        texts = FindingTexts(finding)
        if finding.rule_id in self.rules:  # bounded by the ruleset's rules
            self._texts[finding.rule_id] = (key, texts)
        return texts


_kept: dict[tuple[int, str], RulesetParts] = {}


def parts_for(ruleset: RuleSet, docs_url: str) -> RulesetParts:
    """The :class:`RulesetParts` of a ruleset and docs URL, made on first use and kept."""
    parts = _kept.get((id(ruleset), docs_url))
    if parts is not None and parts.ruleset is ruleset:
        return parts
    if len(_kept) >= _KEPT:
        _kept.clear()
    parts = RulesetParts(ruleset, docs_url)
    _kept[(id(ruleset), docs_url)] = parts
    return parts
