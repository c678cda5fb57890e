"""The one Assessment comparer: what a second Assessment of the same patient says differently.

Two features ask it: a what-if (``ketacds whatif``: the case before and after an edit,
:mod:`ketacds.scenarios.whatif`) and a ruleset change's impact on a corpus (the old
and the new rules on each case, :mod:`ketacds.audit.diff`). Each words the answer in
its own way; the comparing is done here, once, by rule id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ketacds.models.results import Assessment, DoseOption, Finding

__all__ = ["AssessmentChanges", "compare_assessments"]


@attrs.frozen(kw_only=True)
class AssessmentChanges:
    """What differs between two Assessments of one patient (``None`` stands for no Assessment).

    Every tuple holds rule ids (or dose labels), sorted.

    Attributes:
        status: ``(before, after)`` when the one-word status differs, else ``None``.
        appeared: findings only ``after`` has.
        vanished: findings only ``before`` has.
        altered: findings both have that differ (their basis, the facts behind them, not counted).
        dose_changed: the dose advice differs (its route or any option).
        dose_labels: the labels of the dose options that differ, appeared or vanished.
        monitoring_added, monitoring_removed: monitoring items, by their rule.
        gaps_added, gaps_removed: data gaps, by their rule.
    """

    status: tuple[str | None, str | None] | None
    appeared: tuple[str, ...]
    vanished: tuple[str, ...]
    altered: tuple[str, ...]
    dose_changed: bool
    dose_labels: tuple[str, ...]
    monitoring_added: tuple[str, ...]
    monitoring_removed: tuple[str, ...]
    gaps_added: tuple[str, ...]
    gaps_removed: tuple[str, ...]


def _findings(assessment: Assessment | None) -> dict[str, Finding]:
    if assessment is None:
        return {}
    return {f.rule_id: attrs.evolve(f, basis=()) for f in assessment.findings}


def _doses(assessment: Assessment | None) -> dict[str, DoseOption]:
    if assessment is None or assessment.dose is None:
        return {}
    return {o.label: o for o in assessment.dose.options}


def _added(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(new.keys() - old.keys()))


def compare_assessments(before: Assessment | None, after: Assessment | None) -> AssessmentChanges:
    """What ``after`` says differently from ``before``."""
    a, b = _findings(before), _findings(after)
    old_doses, new_doses = _doses(before), _doses(after)
    old_mon = {m.rule_id: m for m in before.monitoring} if before else {}
    new_mon = {m.rule_id: m for m in after.monitoring} if after else {}
    old_gaps = {g.rule_id: g for g in before.data_gaps} if before else {}
    new_gaps = {g.rule_id: g for g in after.data_gaps} if after else {}
    old_status = before.status if before else None
    new_status = after.status if after else None
    return AssessmentChanges(
        status=(old_status, new_status) if old_status != new_status else None,
        appeared=_added(a, b),
        vanished=_added(b, a),
        altered=tuple(sorted(k for k in a.keys() & b.keys() if a[k] != b[k])),
        dose_changed=(before.dose if before else None) != (after.dose if after else None),
        dose_labels=tuple(
            label
            for label in sorted(old_doses.keys() | new_doses.keys())
            if old_doses.get(label) != new_doses.get(label)
        ),
        monitoring_added=_added(old_mon, new_mon),
        monitoring_removed=_added(new_mon, old_mon),
        gaps_added=_added(old_gaps, new_gaps),
        gaps_removed=_added(new_gaps, old_gaps),
    )
