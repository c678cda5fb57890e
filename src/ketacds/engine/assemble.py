"""Turn an engine's firings into an :class:`~ketacds.models.results.Assessment`.

Everything here is a pure function of (ruleset, rules in scope, facts, firings,
context), with every collection sorted, so the Assessment never depends on the
order in which an engine happened to fire.

An :class:`Assembler` is built once per set of rules in scope (one route and
jurisdiction) and keeps what does not depend on the patient: each rule's evidence
citations, monitoring item, data gap, dose parameters and status precedence. Per
assessment, only the basis of each finding, the dose arithmetic and the trace are
built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ketacds._version import __version__
from ketacds.dosing.functions import FUNCTIONS, DoseResult
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
    FindingGroup,
    Firing,
    MonitoringItem,
    Provenance,
)
from ketacds.ruleset.ir import Condition, Not, Pattern, Rule, RuleSet
from ketacds.vocabulary import DATA_GAP, MONITORING, UNCONFIRMED

__all__ = ["TRACE_CACHE_SIZE", "Assembler"]

#: Trace entries an Assembler remembers: many firings recur from patient to patient
#: (a monitoring rule on the plan fact), so each is built once; emptied when full.
TRACE_CACHE_SIZE = 20_000

_DOSE_FIELDS = tuple(a.name for a in attrs.fields(DoseResult))


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


def _patient_fields(condition: Condition) -> set[str]:
    """The patient-fact fields a rule's condition tests."""
    if isinstance(condition, Pattern):
        return {test.field for test in condition.tests} if condition.fact == "patient" else set()
    if isinstance(condition, Not):
        return _patient_fields(condition.item)
    return set().union(*(_patient_fields(item) for item in condition.items))


def _explained_by_totals(basis_ids: set[str], part: _RuleParts, facts: FactSet) -> set[str]:
    """Replace a patient fact read only for table totals by the facts summed into them.

    A finding on the patient's total (the daily benzodiazepine dose as diazepam
    equivalent) is because of the drugs summed, not the patient's age and sex.
    """
    if not part.patient_fields:
        return basis_ids
    for fact_id in [i for i in basis_ids if i in facts.totals]:
        totals = facts.totals[fact_id]
        if part.patient_fields <= totals.keys():
            summed = {i for field in part.patient_fields for i in totals[field]}
            if summed:
                basis_ids = (basis_ids - {fact_id}) | summed
    return basis_ids


class _RuleParts:
    """What an Assessment says about one rule, whatever the patient."""

    __slots__ = (
        "dose_params",
        "evidence",
        "finding",
        "flag_ids",
        "gap",
        "monitoring",
        "patient_fields",
        "rank",
        "rule",
        "status",
    )

    def __init__(self, rule: Rule, ruleset: RuleSet) -> None:
        table = ruleset.status
        sources = {source.id: source for source in ruleset.sources}
        self.rule = rule
        self.patient_fields = frozenset(_patient_fields(rule.when))
        self.flag_ids = tuple(flag_id(flag) for flag in rule.flags)
        self.status = table.status_of(rule.severity)
        self.rank = table.rank(self.status) if self.status is not None else len(table.levels)
        self.evidence = tuple(
            EvidenceRef(source=e.source, title=sources[e.source].title, section=e.section)
            for e in rule.evidence
        )
        finding = rule.finding
        # Every field of the rule's Finding but its basis, which depends on the patient.
        self.finding: dict[str, Any] | None = (
            {
                "rule_id": rule.id,
                "category": rule.category,
                "severity": rule.severity,
                "title": rule.title,
                "message": finding.message,
                "management": finding.management,
                "evidence": self.evidence,
                "confidence": rule.confidence,
                "advisory": rule.confidence == UNCONFIRMED,
                "group": rule.group,
            }
            if finding is not None
            else None
        )
        self.monitoring = (
            MonitoringItem(
                rule_id=rule.id,
                title=rule.title,
                instruction=finding.message,
                timing=finding.timing,
                group=rule.group,
            )
            if finding is not None and rule.category == MONITORING
            else None
        )
        self.gap = (
            DataGap(
                rule_id=rule.id,
                missing=finding.missing or rule.title,
                message=finding.message,
                management=finding.management,
            )
            if finding is not None and rule.category == DATA_GAP
            else None
        )
        self.dose_params: dict[str, Any] | None = dict(rule.dose.params) if rule.dose is not None else None


class Assembler:
    """Builds Assessments for one set of rules in scope (one route and jurisdiction).

    Args:
        ruleset: the loaded ruleset (sources, status table).
        digest: the ruleset's digest, recorded in every result.
        rules: the rules in scope; every firing must be of one of them.
        engine: the engine name recorded in the provenance.
        jurisdiction: the jurisdiction these rules were scoped to.
        route: the route they were scoped to (the label a jurisdiction follows is per route).
    """

    def __init__(
        self,
        *,
        ruleset: RuleSet,
        digest: str,
        rules: Sequence[Rule],
        engine: str,
        jurisdiction: str,
        route: str | None = None,
    ) -> None:
        self._ruleset = ruleset
        self._digest = digest
        self._engine = engine
        if route is None:
            self._scope = ruleset.jurisdiction_scope(jurisdiction)
            self._follows = None
        else:
            self._scope = ruleset.program_scope(route, jurisdiction)
            self._follows = ruleset.follows(route, jurisdiction)
        self._parts = {rule.id: _RuleParts(rule, ruleset) for rule in rules}
        named = {rule.group for rule in rules}
        self._groups = tuple(
            FindingGroup(id=g.id, title=g.title, note=g.note) for g in ruleset.groups if g.id in named
        )
        self._meanings = {level.name: level.meaning for level in ruleset.status.levels}
        self._ranks = {level.name: index for index, level in enumerate(ruleset.status.levels)}
        self._trace: dict[RawFiring, Firing] = {}
        self._now: tuple[dt.datetime | None, str] = (None, "")

    def assemble(
        self,
        facts: FactSet,
        raw: RawResult,
        context: Context,
        data_quality: Sequence[DataQualityIssue] = (),
    ) -> Assessment:
        """Build the Assessment for one evaluation (``data_quality``: the adapter's notes on the input)."""
        parts = self._parts
        fired: dict[str, list[RawFiring]] = {}
        producers: dict[str, list[RawFiring]] = {}
        for firing in raw.firings:
            fired.setdefault(firing.rule_id, []).append(firing)
            for produced in parts[firing.rule_id].flag_ids:
                producers.setdefault(produced, []).append(firing)

        facts_by_id = facts.by_id()
        refs: dict[str, FactRef] = {}
        reported: list[tuple[int, str, Finding]] = []
        monitoring: list[MonitoringItem] = []
        gaps: list[DataGap] = []
        options: list[DoseOption] = []
        status: str | None = None
        for rule_id in sorted(fired):
            part = parts[rule_id]
            if part.finding is None:
                continue
            basis_ids: set[str] = set()
            for firing in fired[rule_id]:
                basis_ids |= _input_basis(firing, producers)
            basis_ids = _explained_by_totals(basis_ids, part, facts)
            for i in basis_ids:
                if i not in refs:
                    refs[i] = FactRef(id=i, type=facts_by_id[i]["t"], label=facts.labels[i])
            if len(basis_ids) == 1:
                basis: tuple[FactRef, ...] = (refs[next(iter(basis_ids))],)
            else:
                basis = tuple(sorted((refs[i] for i in basis_ids), key=_fact_ref_key))
            reported.append((part.rank, rule_id, Finding(**part.finding, basis=basis)))
            if part.status is not None and (status is None or part.rank < self._ranks[status]):
                status = part.status
            if part.monitoring is not None:
                monitoring.append(part.monitoring)
            if part.gap is not None:
                gaps.append(part.gap)
            dose = part.rule.dose
            if dose is not None and part.dose_params is not None:
                result = FUNCTIONS[dose.function](part.dose_params, facts.dose_inputs)
                computed = {name: getattr(result, name) for name in _DOSE_FIELDS}
                options.append(
                    DoseOption(rule_id=rule_id, label=dose.label, function=dose.function, **computed)
                )

        if status is None:
            status = self._ruleset.status.default
        reported.sort(key=_reported_key)
        shown = {finding.group for _, _, finding in reported}
        groups = tuple(g for g in self._groups if g.id in shown)
        withheld = None
        if options and status in self._ruleset.status.no_dose:
            # Never a dose beside "do not treat": the dose rules' findings stay listed.
            withheld = (
                f"No dose is offered because the status is {status}; "
                f"the dose rules that fired ({', '.join(o.rule_id for o in options)}) "
                "are listed for reference only."
            )
            options = []
        return Assessment(
            status=status,
            status_meaning=self._meanings[status],
            findings=tuple(finding for _, _, finding in reported),
            dose=DoseAdvice(route=context.route, options=tuple(options)) if options else None,
            dose_withheld=withheld,
            monitoring=tuple(monitoring),
            data_gaps=tuple(gaps),
            data_quality=tuple(sorted(set(data_quality), key=_quality_order)) if data_quality else (),
            provenance=Provenance(
                ruleset=self._ruleset.name,
                version=self._ruleset.version,
                digest=self._digest,
                package_version=__version__,
                engine=self._engine,
                now=self._isoformat(context.now),
                route=context.route,
                jurisdiction=context.jurisdiction,
                jurisdiction_scope=self._scope,
                follows=self._follows.label if self._follows is not None else None,
                follows_basis=self._follows.basis if self._follows is not None else None,
            ),
            trace=tuple(self._firing(f) for f in raw.firings),
            groups=groups,
        )

    def _firing(self, raw: RawFiring) -> Firing:
        firing = self._trace.get(raw)
        if firing is None:
            if len(self._trace) >= TRACE_CACHE_SIZE:
                self._trace.clear()
            firing = Firing(rule_id=raw.rule_id, facts=raw.facts, derived=self._parts[raw.rule_id].rule.flags)
            self._trace[raw] = firing
        return firing

    def _isoformat(self, now: dt.datetime) -> str:
        # A batch assesses everyone at one `now`: format it once (same object, same text).
        last, text = self._now
        if now is not last:
            text = now.isoformat()
            self._now = (now, text)
        return text


def _fact_ref_key(ref: FactRef) -> tuple[str, str, str]:
    return ref.type, ref.label, ref.id


def _reported_key(item: tuple[int, str, Finding]) -> tuple[int, str]:
    return item[0], item[1]


def _quality_order(issue: DataQualityIssue) -> tuple[int, str, str, str, str]:
    return (
        QUALITY_SEVERITIES.index(issue.severity),
        issue.resource or "",
        issue.path or "",
        issue.code,
        issue.message,
    )
