"""Turn an engine's firings into an :class:`~ketacds.models.results.Assessment`.

Everything here is a pure function of (ruleset, rules in scope, facts, firings,
context), with every collection sorted, so the Assessment never depends on the
order in which an engine happened to fire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from ketacds._version import __version__
from ketacds.dosing.functions import FUNCTIONS
from ketacds.engine.facts import FactSet
from ketacds.engine.raw import RawFiring, RawResult, flag_id
from ketacds.models.inputs import Context
from ketacds.models.quality import QUALITY_SEVERITIES, DataQualityIssue
from ketacds.models.results import (
    Assessment,
    DataGap,
    DoseAdvice,
    DoseOption,
    EvidenceRef,
    FactRef,
    Finding,
    Firing,
    MonitoringItem,
    Provenance,
)
from ketacds.ruleset.ir import Rule, RuleSet, StatusTable

__all__ = ["assemble"]


def _input_basis(
    firing: RawFiring,
    producers: Mapping[str, list[RawFiring]],
    seen: frozenset[str] = frozenset(),
) -> set[str]:
    """The input fact ids behind a firing, following derived flags to their producers."""
    ids: set[str] = set()
    for fact_id in firing.facts:
        if fact_id.startswith("flag:"):
            if fact_id in seen:
                continue
            for producer in producers.get(fact_id, ()):
                ids |= _input_basis(producer, producers, seen | {fact_id})
        else:
            ids.add(fact_id)
    return ids


def assemble(
    *,
    ruleset: RuleSet,
    digest: str,
    rules: Sequence[Rule],
    facts: FactSet,
    raw: RawResult,
    context: Context,
    engine: str,
    data_quality: Sequence[DataQualityIssue] = (),
) -> Assessment:
    """Build the Assessment for one evaluation."""
    by_id = {rule.id: rule for rule in rules}
    fired: dict[str, list[RawFiring]] = {}
    producers: dict[str, list[RawFiring]] = {}
    for firing in raw.firings:
        fired.setdefault(firing.rule_id, []).append(firing)
        for flag in by_id[firing.rule_id].flags:
            producers.setdefault(flag_id(flag), []).append(firing)

    facts_by_id = facts.by_id()
    sources = {source.id: source for source in ruleset.sources}
    status_table = ruleset.status
    findings: list[Finding] = []
    monitoring: list[MonitoringItem] = []
    gaps: list[DataGap] = []
    options: list[DoseOption] = []
    for rule_id in sorted(fired):
        rule = by_id[rule_id]
        if rule.finding is None:
            continue
        basis_ids: set[str] = set()
        for firing in fired[rule_id]:
            basis_ids |= _input_basis(firing, producers)
        basis = tuple(
            sorted(
                (FactRef(id=i, type=facts_by_id[i]["t"], label=facts.labels[i]) for i in basis_ids),
                key=lambda ref: (ref.type, ref.label, ref.id),
            )
        )
        findings.append(
            Finding(
                rule_id=rule.id,
                category=rule.category,
                severity=rule.severity,
                title=rule.title,
                message=rule.finding.message,
                management=rule.finding.management,
                evidence=tuple(
                    EvidenceRef(source=e.source, title=sources[e.source].title, section=e.section)
                    for e in rule.evidence
                ),
                confidence=rule.confidence,
                advisory=rule.confidence == "M",
                basis=basis,
            )
        )
        if rule.category == "monitoring":
            monitoring.append(
                MonitoringItem(
                    rule_id=rule.id,
                    title=rule.title,
                    instruction=rule.finding.message,
                    timing=rule.finding.timing,
                )
            )
        if rule.category == "data-gap":
            gaps.append(
                DataGap(
                    rule_id=rule.id,
                    missing=rule.finding.missing or rule.title,
                    message=rule.finding.message,
                    management=rule.finding.management,
                )
            )
        if rule.dose is not None:
            result = FUNCTIONS[rule.dose.function](dict(rule.dose.params), facts.dose_inputs)
            options.append(
                DoseOption(
                    rule_id=rule.id,
                    label=rule.dose.label,
                    function=rule.dose.function,
                    **attrs.asdict(result, recurse=False),
                )
            )

    reached = [s for f in findings if (s := status_table.status_of(f.severity)) is not None]
    status = min(reached, key=status_table.rank) if reached else status_table.default
    meaning = next(level.meaning for level in status_table.levels if level.name == status)
    findings.sort(key=lambda f: (_rank(status_table, f.severity), f.rule_id))
    return Assessment(
        status=status,
        status_meaning=meaning,
        findings=tuple(findings),
        dose=DoseAdvice(route=context.route, options=tuple(options)) if options else None,
        monitoring=tuple(monitoring),
        data_gaps=tuple(gaps),
        data_quality=tuple(sorted(set(data_quality), key=_quality_order)),
        provenance=Provenance(
            ruleset=ruleset.name,
            version=ruleset.version,
            digest=digest,
            package_version=__version__,
            engine=engine,
            now=context.now.isoformat(),
            route=context.route,
            jurisdiction=context.jurisdiction,
            jurisdiction_scope=ruleset.jurisdiction_scope(context.jurisdiction),
        ),
        trace=tuple(
            Firing(
                rule_id=f.rule_id,
                facts=tuple(i for i in f.facts if not i.startswith("absent:")),
                derived=by_id[f.rule_id].flags,
            )
            for f in raw.firings
        ),
    )


def _quality_order(issue: DataQualityIssue) -> tuple[int, str, str, str, str]:
    return (
        QUALITY_SEVERITIES.index(issue.severity),
        issue.resource or "",
        issue.path or "",
        issue.code,
        issue.message,
    )


def _rank(table: StatusTable, severity: str) -> int:
    status = table.status_of(severity)
    return table.rank(status) if status is not None else len(table.levels)
