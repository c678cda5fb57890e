"""Turn an engine's firings into an :class:`~ketacds.models.results.Assessment`.

Everything here is a pure function of (ruleset, rules in scope, facts, firings,
context), with every collection sorted, so the Assessment never depends on the
order in which an engine happened to fire.

An :class:`Assembler` is built once per set of rules in scope (one route and
jurisdiction) and keeps what does not depend on the patient: each rule's evidence
citations, the fields of its Finding but the basis, its monitoring item, data gap,
dose parameters and status precedence. Per assessment, only the basis of each
finding, the dose arithmetic and the trace are built; the result models are built
positionally by :func:`~ketacds.models.trusted.trusted_constructor` (they hold no
validators: nothing is skipped but attrs' keyword matching), and one Provenance
serves every assessment at the same ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, TypeAlias

import attrs

from ketacds._version import __version__
from ketacds.dosing.functions import FUNCTIONS, DoseResult
from ketacds.engine.facts import FactSet
from ketacds.engine.raw import RawFiring, RawResult, flag_id
from ketacds.models.facts import FLAG
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
from ketacds.models.trusted import trusted_constructor, trusted_factory
from ketacds.ruleset.ir import Rule, RuleSet, patterns
from ketacds.vocabulary import DATA_GAP, MONITORING, UNCONFIRMED

__all__ = ["TRACE_CACHE_SIZE", "Assembler"]

#: What :meth:`Assembler._findings` finds: the findings in order, the status (None: the
#: default), the groups shown, the monitoring items, the data gaps, the dose options and
#: the trace.
_Found: TypeAlias = tuple[
    tuple[Finding, ...],
    str | None,
    set[str],
    list[MonitoringItem],
    list[DataGap],
    list[DoseOption],
    tuple[Firing, ...],
]

#: What :class:`_RuleParts` keeps for :meth:`Assembler._findings` (see ``_RuleParts.plan``): the
#: rank, the Finding builder, whether the facts are the basis as they are, the type of the
#: facts it binds, its Finding on no fact, its group, its monitoring item, its data gap, and
#: its parts if it is a dose rule.
_Plan: TypeAlias = tuple[
    int,
    Callable[[tuple[FactRef, ...]], Finding],
    bool | None,
    str | None,
    Finding,
    str | None,
    MonitoringItem | None,
    DataGap | None,
    "_RuleParts | None",
]

#: Trace entries an Assembler remembers: many firings recur from patient to patient
#: (a monitoring rule on the plan fact), so each is built once; emptied when full.
TRACE_CACHE_SIZE = 20_000

# A DoseOption is the rule's id, label and function, then a DoseResult's fields in order.
_DOSE_FIELDS = tuple(a.name for a in attrs.fields(DoseResult))
if tuple(a.name for a in attrs.fields(DoseOption))[3:] != _DOSE_FIELDS:  # pragma: no cover
    raise TypeError("DoseOption's fields after its first three are not DoseResult's")
_dose_values = attrgetter(*_DOSE_FIELDS)

# The result models hold no validators; these build them from positional values, in
# field order, without attrs' keyword matching (a Finding in about half the time).
_new_assessment = trusted_constructor(Assessment)
_new_dose_option = trusted_constructor(DoseOption)
_new_fact_ref = trusted_constructor(FactRef)
#: A rule's Finding builder from every field but the basis: ``_finding_maker(*fields)(basis)``.
_finding_maker = trusted_factory(Finding, ("basis",))
_new_firing = trusted_constructor(Firing)
_new_provenance = trusted_constructor(Provenance)


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
        "adds",
        "bound_type",
        "direct",
        "dose_params",
        "evidence",
        "finding",
        "finding_on_nothing",
        "flag_ids",
        "gap",
        "group",
        "make_finding",
        "monitoring",
        "patient_fields",
        "plan",
        "rank",
        "reads_flags",
        "rule",
        "status",
    )

    def __init__(self, rule: Rule, ruleset: RuleSet) -> None:
        table = ruleset.status
        sources = {source.id: source for source in ruleset.sources}
        self.rule = rule
        patient = [pattern for pattern in patterns(rule.when) if pattern.fact == "patient"]
        self.patient_fields = frozenset(test.field for pattern in patient for test in pattern.tests)
        #: Whether a firing may name a derived flag (else its facts are its input basis).
        self.reads_flags = any(pattern.fact == FLAG for pattern in patterns(rule.when))
        #: Whether a firing's facts are its input basis (no flags to follow), but for
        #: patient totals to explain (see :func:`_explained_by_totals`).
        self.direct = not self.reads_flags
        #: The type of every fact a firing names, when the rule binds facts of one type only.
        bound = {pattern.fact for pattern in patterns(rule.when, negated=False)}
        self.bound_type = next(iter(bound)) if len(bound) == 1 and FLAG not in bound else None
        self.flag_ids = tuple(flag_id(flag) for flag in rule.flags)
        self.status = table.status_of(rule.severity)
        self.rank = table.rank(self.status) if self.status is not None else len(table.levels)
        self.evidence = tuple(
            EvidenceRef(source=e.source, title=sources[e.source].title, section=e.section)
            for e in rule.evidence
        )
        finding = rule.finding
        # Every field of the rule's Finding before its basis, which depends on the patient,
        # in the Finding's field order (then the basis, then ``group``).
        self.finding: tuple[Any, ...] | None = (
            (
                rule.id,
                rule.category,
                rule.severity,
                rule.title,
                finding.message,
                finding.management,
                self.evidence,
                rule.confidence,
                rule.confidence == UNCONFIRMED,
            )
            if finding is not None
            else None
        )
        self.group = rule.group
        #: The rule's Finding from its basis (``None``: the rule reports no finding).
        self.make_finding: Callable[[tuple[FactRef, ...]], Finding] | None = (
            _finding_maker(*self.finding, rule.group) if self.finding is not None else None
        )
        #: Its Finding on no fact (immutable: one for every assessment that has it).
        self.finding_on_nothing = self.make_finding(()) if self.make_finding is not None else None
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
        #: Whether the rule adds a monitoring item, a data gap or a dose option beside its finding.
        self.adds = self.monitoring is not None or self.gap is not None or self.dose_params is not None
        #: Whether a firing's facts are its finding's basis as they are: always (True), when
        #: the patient has no table totals (None: the rule reads the patient's fields, and a
        #: total there is explained by the facts summed), or never (False: it reads flags).
        plain = (None if self.patient_fields else True) if self.direct else False
        #: What :meth:`Assembler._findings` reads at a firing of a rule with a finding, in one
        #: tuple (``None`` for a rule without one).
        self.plan: _Plan | None = None
        if self.make_finding is not None and self.finding_on_nothing is not None:
            self.plan = (
                self.rank,
                self.make_finding,
                plain,
                self.bound_type,
                self.finding_on_nothing,
                self.group,
                self.monitoring,
                self.gap,
                self if self.dose_params is not None else None,
            )


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
        self._plans = {rule_id: part.plan for rule_id, part in self._parts.items()}
        named = {rule.group for rule in rules}
        self._groups = tuple(
            FindingGroup(id=g.id, title=g.title, note=g.note) for g in ruleset.groups if g.id in named
        )
        self._meanings = {level.name: level.meaning for level in ruleset.status.levels}
        #: The status of each rank a rule may have (the last: the rules that add nothing to it).
        self._ranked: tuple[str | None, ...] = (*(level.name for level in ruleset.status.levels), None)
        #: Trace entries by RawFiring (equal to, and hashed as, its (rule id, fact ids) pair).
        self._trace: dict[RawFiring, Firing] = {}
        #: The last Provenance: for `now`, the route and the jurisdiction.
        self._last_provenance: tuple[dt.datetime, str, str, Provenance] | None = None

    def assemble(
        self,
        facts: FactSet,
        raw: RawResult,
        context: Context,
        data_quality: Sequence[DataQualityIssue] = (),
    ) -> Assessment:
        """Build the Assessment for one evaluation (``data_quality``: the adapter's notes on the input)."""
        found = self._findings(raw.firings, facts)
        if found is None:  # the firings were not in RawResult's order: read them in that order
            found = self._findings(tuple(sorted(raw.firings)), facts)
            assert found is not None  # sorted firings come in rule id order
            found = (*found[:-1], self._trace_of(raw.firings))  # the trace in their order
        reported, status, shown, monitoring, gaps, options, trace = found
        if status is None:
            status = self._ruleset.status.default
        groups = tuple([g for g in self._groups if g.id in shown]) if shown else ()
        withheld = None
        if options and status in self._ruleset.status.no_dose:
            # Never a dose beside "do not treat": the dose rules' findings stay listed.
            withheld = (
                f"No dose is offered because the status is {status}; "
                f"the dose rules that fired ({', '.join(o.rule_id for o in options)}) "
                "are listed for reference only."
            )
            options = []
        return _new_assessment(
            status,
            self._meanings[status],
            reported,
            DoseAdvice(route=context.route, options=tuple(options)) if options else None,
            tuple(monitoring),
            tuple(gaps),
            self._provenance(context),
            trace,
            _quality_sorted(data_quality) if data_quality else (),
            withheld,
            groups,
        )

    def _findings(self, firings: Sequence[RawFiring], facts: FactSet) -> _Found | None:
        """The findings of ``firings`` (sorted by rank, then rule id), what their rules add, and the trace.

        One pass over the firings, which come sorted by rule id (RawResult's order), so
        the firings of one rule are neighbours: a rule's finding is built at its first
        firing and rebuilt, on the basis of them all, at each further one (rare). Each
        finding goes to the list of its rank, so the lists joined in rank order give
        (rank, rule id) order. Returns None if the firings are not in rule id order.
        """
        plans = self._plans
        facts_by_id: Mapping[str, Any] | None = None
        labels = facts.labels
        totals = facts.totals
        bases: dict[str, tuple[FactRef]] = {}  # the basis of one fact, by its id
        refs: dict[str, FactRef] = {}
        ranked: list[list[Finding]] = [[] for _ in self._ranked]
        shown: set[str] = set()
        monitoring: list[MonitoringItem] = []
        gaps: list[DataGap] = []
        options: list[DoseOption] = []
        previous = ""
        producers: dict[str, list[RawFiring]] | None = None
        for firing in firings:
            rule_id, ids = firing
            if rule_id <= previous:
                if rule_id < previous:
                    return None
                # another firing of the rule just seen
                part = self._parts[rule_id]
                if part.make_finding is None:
                    continue
                if producers is None:
                    producers = self._producers(firings)
                if facts_by_id is None:
                    facts_by_id = facts.by_id()
                same = [other for other in firings if other.rule_id == rule_id]
                basis = self._basis(part, same, producers, facts, refs, facts_by_id)
                ranked[part.rank][-1] = part.make_finding(basis)
                continue
            previous = rule_id
            plan = plans[rule_id]
            if plan is None:  # a rule that reports no finding
                continue
            rank, make, plain, kind, on_nothing, group, item, gap, dose = plan
            if not ids and plain is not False:
                ranked[rank].append(on_nothing)  # a rule on no fact: one finding for all
            elif len(ids) == 1 and (plain or (plain is None and not totals)):
                # Most findings: one firing on one input fact.
                i = ids[0]
                single = bases.get(i)
                if single is None:
                    if kind is None:
                        if facts_by_id is None:
                            facts_by_id = facts.by_id()
                        kind = facts_by_id[i]["t"]
                    ref = refs.get(i) or _new_fact_ref(i, kind, labels[i])
                    refs[i] = ref
                    single = bases[i] = (ref,)
                ranked[rank].append(make(single))
            else:
                if producers is None:
                    producers = self._producers(firings)
                if facts_by_id is None:
                    facts_by_id = facts.by_id()
                part = self._parts[rule_id]
                ranked[rank].append(make(self._basis(part, [firing], producers, facts, refs, facts_by_id)))
            if group is not None:
                shown.add(group)
            if item is not None:
                monitoring.append(item)
            if gap is not None:
                gaps.append(gap)
            if dose is not None:
                options.append(self._dose_option(dose, facts))
        # The status is that of the most severe rule that fired (the last rank: none adds one).
        status = None
        for rank, of_rank in enumerate(ranked):
            if of_rank:
                status = self._ranked[rank]
                break
        reported = tuple(chain.from_iterable(ranked))
        return reported, status, shown, monitoring, gaps, options, self._trace_of(firings)

    def _producers(self, firings: Sequence[RawFiring]) -> dict[str, list[RawFiring]]:
        """The firings that derived each flag (by the flag's fact id)."""
        parts = self._parts
        producers: dict[str, list[RawFiring]] = {}
        for firing in firings:
            for produced in parts[firing.rule_id].flag_ids:
                producers.setdefault(produced, []).append(firing)
        return producers

    @staticmethod
    def _dose_option(part: _RuleParts, facts: FactSet) -> DoseOption:
        """The dose a dose rule computes for this patient."""
        dose, params = part.rule.dose, part.dose_params
        assert dose is not None  # a dose rule's parts
        assert params is not None
        result = FUNCTIONS[dose.function](params, facts.dose_inputs)
        return _new_dose_option(part.rule.id, dose.label, dose.function, *_dose_values(result))

    @staticmethod
    def _basis(
        part: _RuleParts,
        firings: list[RawFiring],
        producers: Mapping[str, list[RawFiring]],
        facts: FactSet,
        refs: dict[str, FactRef],
        facts_by_id: Mapping[str, Any],
    ) -> tuple[FactRef, ...]:
        """The input facts behind a rule's firings, as FactRefs (remembered in ``refs``), sorted."""
        if part.reads_flags:
            basis_ids = _input_basis(firings[0], producers)
            for firing in firings[1:]:
                basis_ids |= _input_basis(firing, producers)
        else:
            basis_ids = set(firings[0].facts)
            for firing in firings[1:]:
                basis_ids.update(firing.facts)
        if part.patient_fields and facts.totals:
            basis_ids = _explained_by_totals(basis_ids, part, facts)
        for i in basis_ids:
            if i not in refs:
                refs[i] = _new_fact_ref(i, facts_by_id[i]["t"], facts.labels[i])
        if len(basis_ids) == 1:
            return (refs[next(iter(basis_ids))],)
        return tuple(sorted([refs[i] for i in basis_ids], key=_fact_ref_key))

    def _trace_of(self, firings: Sequence[RawFiring]) -> tuple[Firing, ...]:
        """The trace entries of ``firings``, each built once and remembered (by rule and facts)."""
        found = tuple(map(self._trace.get, firings))  # a RawFiring is the (rule id, fact ids) pair it names
        if all(found):  # (a Firing is true)
            return found  # type: ignore[return-value]  # no None in it
        return tuple([entry or self._traced(firings[index]) for index, entry in enumerate(found)])

    def _traced(self, firing: RawFiring) -> Firing:
        """The trace entry of ``firing``, built and remembered (the memo emptied when full)."""
        trace = self._trace
        if len(trace) >= TRACE_CACHE_SIZE:
            trace.clear()
        rule_id = firing.rule_id
        entry = trace[firing] = _new_firing(rule_id, firing.facts, self._parts[rule_id].rule.flags)
        return entry

    def _provenance(self, context: Context) -> Provenance:
        # A batch assesses everyone at one `now`: one Provenance for them all (the same
        # route and jurisdiction, and `now` the same object, or an equal datetime at the
        # same UTC offset: the same local time and offset, written the same).
        last = self._last_provenance
        now = context.now
        if last is not None and last[1] == context.route and last[2] == context.jurisdiction:
            before = last[0]
            if before is now or (
                now.__class__ is before.__class__ is dt.datetime
                and before == now
                and before.utcoffset() == now.utcoffset()
            ):
                return last[3]
        provenance = _new_provenance(
            self._ruleset.name,
            self._ruleset.version,
            self._digest,
            __version__,
            self._engine,
            now.isoformat(),
            context.route,
            context.jurisdiction,
            self._scope,
            self._follows.label if self._follows is not None else None,
            self._follows.basis if self._follows is not None else None,
        )
        self._last_provenance = (now, context.route, context.jurisdiction, provenance)
        return provenance


def _fact_ref_key(ref: FactRef) -> tuple[str, str, str]:
    return ref.type, ref.label, ref.id


class _SeverityRank(dict[str, int]):
    """Each severity's place in QUALITY_SEVERITIES (an unknown one: ``index``'s ValueError)."""

    def __missing__(self, severity: str) -> int:
        return QUALITY_SEVERITIES.index(severity)


_SEVERITY_RANK = _SeverityRank((severity, rank) for rank, severity in enumerate(QUALITY_SEVERITIES))


def _quality_sorted(issues: Sequence[DataQualityIssue]) -> tuple[DataQualityIssue, ...]:
    """The distinct issues, by severity, resource, path, code and message.

    Each issue is keyed by a tuple that orders it so and tells every two distinct issues
    apart (whether ``resource`` and ``path`` are None is part of it), so the keys both
    drop the duplicates (the last of equal keys stays) and sort the rest, without
    hashing the issues themselves.
    """
    if len(issues) == 1:
        return (issues[0],)
    rank = _SEVERITY_RANK
    keyed = {}
    for issue in issues:
        resource = issue.resource
        path = issue.path
        severity = rank[issue.severity]
        code, message = issue.code, issue.message
        keyed[severity, resource or "", path or "", code, message, resource is None, path is None] = issue
    return tuple([keyed[key] for key in sorted(keyed)])
