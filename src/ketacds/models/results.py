"""What ketacds answers: the :class:`Assessment` and its parts (frozen attrs).

An Assessment is deterministic: the same record, ruleset digest and ``now`` give an
equal Assessment and byte-identical JSON. Its JSON (:meth:`Assessment.to_json`)
has the top-level keys ``status``, ``findings``, ``groups``, ``dose``, ``monitoring``,
``data_gaps``, ``data_quality``, ``provenance`` and ``trace``, writes decimals as
strings so that no digit is lost, and reads back exactly (:meth:`Assessment.from_json`;
JSON written before ``data_quality`` or ``groups`` existed reads back with none).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from ketacds.jsoncodec import Codec, TextWriter, decimal_text
from ketacds.models.quality import DataQualityIssue

__all__ = [
    "Assessment",
    "DataGap",
    "DoseAdvice",
    "DoseOption",
    "EvidenceRef",
    "FactRef",
    "Finding",
    "FindingGroup",
    "Firing",
    "MonitoringItem",
    "Provenance",
]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class FactRef:
    """An input fact a finding rests on: its id, type and a readable description."""

    id: str
    type: str
    label: str


@attrs.frozen(kw_only=True)
class EvidenceRef:
    """A citation: source id, its title from the register, and the section."""

    source: str
    title: str
    section: str | None = None


@attrs.frozen(kw_only=True)
class Finding:
    """One rule that fired, with everything a clinician needs to check it.

    ``basis`` lists the input facts that made the rule fire (through any chain of
    derived flags). ``advisory`` is true for M-confidence (unconfirmed) rules.
    ``group`` is the id of the presentation group it is shown in (one of the
    Assessment's ``groups``), or ``None``: shown on its own.
    """

    rule_id: str
    category: str
    severity: str
    title: str
    message: str
    management: str | None
    evidence: tuple[EvidenceRef, ...]
    confidence: str
    advisory: bool
    basis: tuple[FactRef, ...]
    group: str | None = None


@attrs.frozen(kw_only=True)
class FindingGroup:
    """A presentation group: findings every patient on the route gets, shown as one item.

    Its members are the findings whose ``group`` is ``id`` (in the Assessment's order);
    they stay whole in ``findings``. Declared in the ruleset's manifest.
    """

    id: str
    title: str
    note: str | None = None


@attrs.frozen(kw_only=True)
class DataGap:
    """A datum that is missing and could change the answer."""

    rule_id: str
    missing: str
    message: str
    management: str | None = None


@attrs.frozen(kw_only=True)
class MonitoringItem:
    """Something to watch, and when."""

    rule_id: str
    title: str
    instruction: str
    timing: str | None = None
    #: The presentation group of its finding, if any.
    group: str | None = None


@attrs.frozen(kw_only=True)
class DoseOption:
    """One dose option; ``not_computed`` says why the dose is missing, when it is.

    Weight-based options fill ``mg_per_kg``, ``weight_basis`` and ``dosing_weight_kg``;
    fixed doses (esketamine) leave them empty and give ``sessions_per_week``.
    """

    rule_id: str
    label: str
    function: str
    dose_mg: Decimal | None
    mg_per_kg: Decimal | None = None
    weight_basis: str | None = None
    dosing_weight_kg: Decimal | None = None
    infusion_minutes: int | None = None
    sessions_per_week: Decimal | None = None
    schedule: str | None = None
    formula: str | None = None
    not_computed: str | None = None


@attrs.frozen(kw_only=True)
class DoseAdvice:
    """The dose options for the planned route (more than one when the rules offer alternatives)."""

    route: str
    options: tuple[DoseOption, ...]


@attrs.frozen(kw_only=True)
class Provenance:
    """Which rules, which code and which moment produced this result."""

    ruleset: str
    version: str
    digest: str
    package_version: str
    engine: str
    now: str
    route: str
    jurisdiction: str
    #: Whose rules applied: the jurisdiction, those it lies in, then the label it follows.
    jurisdiction_scope: tuple[str, ...]
    #: The jurisdiction whose label was followed for this route (``EU`` for CH esketamine), if any.
    follows: str | None = None
    #: Why that label is followed (from the ruleset's manifest).
    follows_basis: str | None = None


@attrs.frozen(kw_only=True)
class Firing:
    """One rule activation: the facts it matched and the flags it derived."""

    rule_id: str
    facts: tuple[str, ...]
    derived: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Assessment:
    """The answer for one patient and one planned treatment."""

    status: str
    status_meaning: str
    findings: tuple[Finding, ...]
    dose: DoseAdvice | None
    monitoring: tuple[MonitoringItem, ...]
    data_gaps: tuple[DataGap, ...]
    provenance: Provenance
    trace: tuple[Firing, ...]
    #: What the adapter could not read or read with an assumption (see ``models.quality``).
    data_quality: tuple[DataQualityIssue, ...] = ()
    #: Why no dose is offered although dose rules fired (the status is one of the
    #: manifest's ``status.no_dose`` levels); ``None`` when nothing was withheld.
    dose_withheld: str | None = None
    #: The presentation groups that have members here, in the manifest's order.
    groups: tuple[FindingGroup, ...] = ()

    def members(self, group_id: str) -> tuple[Finding, ...]:
        """The findings shown in the group ``group_id``, in the Assessment's order."""
        return tuple(f for f in self.findings if f.group == group_id)

    @property
    def ungrouped(self) -> tuple[Finding, ...]:
        """The findings shown on their own (in no group)."""
        return tuple(f for f in self.findings if f.group is None)

    def finding(self, rule_id: str) -> Finding | None:
        """Return the finding of ``rule_id``, or ``None`` if that rule did not fire."""
        return next((f for f in self.findings if f.rule_id == rule_id), None)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that reported a finding, sorted."""
        return tuple(f.rule_id for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON data (decimals as strings)."""
        data: dict[str, Any] = _CODEC.encode(self)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """Return stable JSON: sorted keys, so equal Assessments give equal text."""
        # to_dict already writes every mapping's keys in sorted order (see ketacds.jsoncodec).
        if indent is not None:
            return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
        # The same text, written directly, with what recurs from patient to patient remembered.
        return _WRITER.dumps(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Assessment:
        """Rebuild an Assessment from :meth:`to_dict` data."""
        result: Assessment = _CODEC.decode(cls, data)
        return result

    @classmethod
    def from_json(cls, text: str) -> Assessment:
        """Rebuild an Assessment from :meth:`to_json` text."""
        return cls.from_dict(json.loads(text))


def _serialise(_inst: Any, _field: Any, value: Any) -> Any:
    """The Assessment's decimal policy as an ``attrs.asdict`` value serialiser (for tests)."""
    return decimal_text(value)


#: The Assessment's JSON: decimals as text, each mapping's keys sorted (see :mod:`ketacds.jsoncodec`).
_CODEC = Codec(decimals="text", sequences=tuple, sort_keys=True)
#: Writes :meth:`Assessment.to_json` text (``json.dumps`` of ``to_dict``, byte for byte):
#: trace entries, citations, groups, monitoring items and data gaps recur from patient to
#: patient, and so does everything in a Finding but its basis.
_WRITER = TextWriter(
    _CODEC,
    memo=(Firing, EvidenceRef, FindingGroup, MonitoringItem, DataGap, Provenance),
    split={Finding: "basis"},
)
