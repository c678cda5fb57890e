"""Compare two ruleset versions, and measure what the change does to real patients.

:func:`compare` lists rules added, removed and changed (field by field, on the
canonical form of each rule, so layout and comments never count), value sets whose
codes, prefixes or names changed, and changes to the manifest (sources, status table,
jurisdictions, ...). :func:`impact` assesses every case of a corpus with both
versions and records, per patient, the status before and after and the findings that
appear, vanish or change. :func:`report` writes both as a Markdown page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ketacds.audit.corpus import Case
from ketacds.engine.api import Engine
from ketacds.errors import KetacdsError
from ketacds.markup import (
    Block,
    Bullets,
    Heading,
    Inline,
    Item,
    Page,
    Paragraph,
    Table,
    code,
    em,
    join,
    strong,
    to_markdown,
)
from ketacds.models.compare import compare_assessments
from ketacds.models.results import Assessment
from ketacds.ruleset.describe import Describer
from ketacds.ruleset.ir import Rule, RuleSet, ValueSet, canonical, to_data

__all__ = [
    "MISSING",
    "CaseImpact",
    "Change",
    "Impact",
    "RuleChange",
    "RulesetDiff",
    "ValueSetChange",
    "compare",
    "flatten",
    "impact",
    "report",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Stands for "not there" on one side of a :class:`Change`.
MISSING: Any = _Missing()


@attrs.frozen
class Change:
    """One value that differs: its dotted path, and the old and new values (or :data:`MISSING`)."""

    path: str
    old: Any
    new: Any


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Plain JSON data as ``{dotted.path[0]: leaf}`` (an empty list or mapping is a leaf)."""
    if isinstance(data, Mapping) and data:
        out: dict[str, Any] = {}
        for key in sorted(data):
            out.update(flatten(data[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data:
        out = {}
        for index, item in enumerate(data):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: data}


def changes(old: Any, new: Any) -> tuple[Change, ...]:
    """Every leaf that differs between two pieces of JSON data, by path."""
    a, b = flatten(old), flatten(new)
    return tuple(
        Change(path, a.get(path, MISSING), b.get(path, MISSING))
        for path in sorted(a.keys() | b.keys())
        if a.get(path, MISSING) != b.get(path, MISSING)
    )


@attrs.frozen
class RuleChange:
    """A rule in both versions whose canonical form differs."""

    old: Rule
    new: Rule
    changes: tuple[Change, ...]

    @property
    def rule_id(self) -> str:
        """The rule's id."""
        return self.new.id

    @property
    def condition_changed(self) -> bool:
        """Whether the ``when`` condition changed."""
        return any(c.path.startswith("when") for c in self.changes)


@attrs.frozen
class ValueSetChange:
    """A value set in both versions that differs."""

    id: str
    title: str
    codes_added: tuple[str, ...]
    codes_removed: tuple[str, ...]
    names_added: tuple[str, ...]
    names_removed: tuple[str, ...]
    other: tuple[Change, ...]


@attrs.frozen
class RulesetDiff:
    """What changed between two versions of a ruleset."""

    old: RuleSet
    new: RuleSet
    added: tuple[Rule, ...]
    removed: tuple[Rule, ...]
    changed: tuple[RuleChange, ...]
    valuesets_added: tuple[ValueSet, ...]
    valuesets_removed: tuple[ValueSet, ...]
    valuesets_changed: tuple[ValueSetChange, ...]
    manifest: tuple[Change, ...]

    @property
    def identical(self) -> bool:
        """The two versions have the same digest."""
        return self.old.digest == self.new.digest


def _codes(vs: ValueSet) -> dict[str, Any]:
    entries = {f"{c.system}|{c.code}": to_data(c) for c in vs.codes}
    entries.update({f"prefix {c.system}|{c.code}": to_data(c) for c in vs.prefixes})
    return entries


def _valueset_change(old: ValueSet, new: ValueSet) -> ValueSetChange | None:
    if to_data(old) == to_data(new):
        return None
    a, b = _codes(old), _codes(new)
    kept = sorted(a.keys() & b.keys())
    other = [c for key in kept for c in changes({key: a[key]}, {key: b[key]})]
    scalar_fields = ("title", "description", "source")
    other += changes({f: getattr(old, f) for f in scalar_fields}, {f: getattr(new, f) for f in scalar_fields})
    return ValueSetChange(
        id=new.id,
        title=new.title,
        codes_added=tuple(sorted(b.keys() - a.keys())),
        codes_removed=tuple(sorted(a.keys() - b.keys())),
        names_added=tuple(sorted(set(new.names) - set(old.names))),
        names_removed=tuple(sorted(set(old.names) - set(new.names))),
        other=tuple(other),
    )


def compare(old: RuleSet, new: RuleSet) -> RulesetDiff:
    """Compare two rulesets: rules, value sets and the manifest."""
    old_rules = {r.id: r for r in old.rules}
    new_rules = {r.id: r for r in new.rules}
    changed = []
    for rule_id in sorted(old_rules.keys() & new_rules.keys()):
        found = changes(to_data(old_rules[rule_id]), to_data(new_rules[rule_id]))
        if found:
            changed.append(RuleChange(old_rules[rule_id], new_rules[rule_id], found))
    old_vs = {v.id: v for v in old.valuesets}
    new_vs = {v.id: v for v in new.valuesets}
    vs_changed = [_valueset_change(old_vs[k], new_vs[k]) for k in sorted(old_vs.keys() & new_vs.keys())]

    def manifest(ruleset: RuleSet) -> dict[str, Any]:
        data = canonical(ruleset)
        return {k: v for k, v in data.items() if k not in ("rules", "valuesets")}

    return RulesetDiff(
        old=old,
        new=new,
        added=tuple(new_rules[k] for k in sorted(new_rules.keys() - old_rules.keys())),
        removed=tuple(old_rules[k] for k in sorted(old_rules.keys() - new_rules.keys())),
        changed=tuple(changed),
        valuesets_added=tuple(new_vs[k] for k in sorted(new_vs.keys() - old_vs.keys())),
        valuesets_removed=tuple(old_vs[k] for k in sorted(old_vs.keys() - new_vs.keys())),
        valuesets_changed=tuple(c for c in vs_changed if c is not None),
        manifest=changes(manifest(old), manifest(new)),
    )


# ------------------------------------------------------------------ impact


@attrs.frozen
class CaseImpact:
    """One patient assessed by both versions."""

    source: str
    label: str
    old_status: str | None
    new_status: str | None
    old_error: str | None = None
    new_error: str | None = None
    appeared: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    dose_changed: bool = False

    @property
    def status_changed(self) -> bool:
        """The one-word status differs (or one version could not assess the case)."""
        return (self.old_status, self.old_error is None) != (self.new_status, self.new_error is None)

    def transition(self) -> str:
        """``defer → no-concerns-found``, or ``cautions (unchanged)``."""
        old, new = _status(self.old_status, self.old_error), _status(self.new_status, self.new_error)
        return f"{old} → {new}" if old != new else f"{old} (unchanged)"

    @property
    def changed(self) -> bool:
        """Anything the clinician would see differs."""
        return bool(
            self.status_changed
            or self.appeared
            or self.vanished
            or self.altered
            or self.dose_changed
            or self.old_error != self.new_error
        )


@attrs.frozen
class Impact:
    """A corpus assessed by both versions."""

    cases: tuple[CaseImpact, ...]

    @property
    def affected(self) -> tuple[CaseImpact, ...]:
        """The cases where anything changed."""
        return tuple(c for c in self.cases if c.changed)

    @property
    def status_changes(self) -> tuple[CaseImpact, ...]:
        """The cases whose status changed."""
        return tuple(c for c in self.cases if c.status_changed)

    def transitions(self) -> list[tuple[str, str, int]]:
        """``(old status, new status, how many)`` for every change of status, most frequent first."""
        counted = Counter(
            (_status(c.old_status, c.old_error), _status(c.new_status, c.new_error))
            for c in self.status_changes
        )
        return sorted(((a, b, n) for (a, b), n in counted.items()), key=lambda t: (-t[2], t[0], t[1]))

    def by_rule(self, which: str) -> dict[str, list[CaseImpact]]:
        """Rule id → the cases where its finding ``appeared``, ``vanished`` or ``altered``."""
        found: dict[str, list[CaseImpact]] = {}
        for case in self.cases:
            for rule_id in getattr(case, which):
                found.setdefault(rule_id, []).append(case)
        return dict(sorted(found.items()))


def _status(status: str | None, error: str | None) -> str:
    return status if error is None and status is not None else "error"


def _assess(engine: Engine, case: Case) -> tuple[Assessment | None, str | None]:
    try:
        record, context = case.load()
        return engine.assess(record, context), None
    except KetacdsError as error:
        return None, str(error)


def impact(old: Engine, new: Engine, cases: Iterable[Case]) -> Impact:
    """Assess every case with both engines and record what differs."""
    results = []
    for case in cases:
        before, old_error = _assess(old, case)
        after, new_error = _assess(new, case)
        changes = compare_assessments(before, after)
        results.append(
            CaseImpact(
                source=case.source,
                label=case.label,
                old_status=before.status if before else None,
                new_status=after.status if after else None,
                old_error=old_error,
                new_error=new_error,
                appeared=changes.appeared,
                vanished=changes.vanished,
                altered=changes.altered,
                dose_changed=changes.dose_changed,
            )
        )
    return Impact(tuple(results))


# ------------------------------------------------------------------ report


def _value(value: Any) -> Inline:
    if value is MISSING:
        return em("(none)")
    if value is None:
        return em("null")
    if isinstance(value, list):
        return code(", ".join(map(str, value)) or "[]")
    return code(str(value))


def _identity(ruleset: RuleSet, label: str) -> list[Inline]:
    return [code(label), f" — {ruleset.name} {ruleset.version}, digest ", code(ruleset.digest[:16] + "…")]


def _rule_rows(rules: Sequence[Rule]) -> Table:
    return Table(
        ("id", "title", "category", "severity", "routes", "jurisdictions"),
        tuple(
            (
                (code(r.id),),
                (r.title,),
                (r.category,),
                (r.severity,),
                (", ".join(r.routes),),
                (", ".join(r.jurisdictions),),
            )
            for r in rules
        ),
    )


def _changed_rule(change: RuleChange, old: Describer, new: Describer) -> list[Block]:
    blocks: list[Block] = [
        Heading(3, (code(change.rule_id), f" {change.new.title}")),
        Table(
            ("field", "old", "new"),
            tuple(((code(c.path),), (_value(c.old),), (_value(c.new),)) for c in change.changes),
        ),
    ]
    if change.condition_changed:
        before, after = old.condition(change.old.when), new.condition(change.new.when)
        blocks += [
            Paragraph((strong("Condition before:"), " ", *before.content)),
            *([Bullets(before.children)] if before.children else []),
            Paragraph((strong("Condition after:"), " ", *after.content)),
            *([Bullets(after.children)] if after.children else []),
        ]
    return blocks


def _patients(cases: Sequence[CaseImpact]) -> list[Inline]:
    return join(([code(case.source), f" ({case.label})"] for case in cases), "; ")


def report(diff: RulesetDiff, old_label: str, new_label: str, result: Impact | None = None) -> str:
    """The diff (and its impact on a corpus, when given) as a Markdown page."""
    old, new = Describer(diff.old), Describer(diff.new)
    blocks: list[Block] = [
        Heading(1, ("Ruleset diff",)),
        Bullets(
            (
                Item(("old: ", *_identity(diff.old, old_label))),
                Item(("new: ", *_identity(diff.new, new_label))),
            )
        ),
    ]
    if diff.identical:
        blocks.append(Paragraph(("The two rulesets have the same digest: nothing changed.",)))
    summary = (
        f"{len(diff.added)} rules added, {len(diff.removed)} removed, {len(diff.changed)} changed; "
        f"{len(diff.valuesets_added)} value sets added, {len(diff.valuesets_removed)} removed, "
        f"{len(diff.valuesets_changed)} changed; {len(diff.manifest)} manifest values changed."
    )
    blocks.append(Paragraph((summary,)))
    if diff.added:
        blocks += [Heading(2, ("Rules added",)), _rule_rows(diff.added)]
    if diff.removed:
        blocks += [Heading(2, ("Rules removed",)), _rule_rows(diff.removed)]
    if diff.changed:
        blocks.append(Heading(2, ("Rules changed",)))
        for change in diff.changed:
            blocks += _changed_rule(change, old, new)
    if diff.valuesets_added or diff.valuesets_removed or diff.valuesets_changed:
        blocks.append(Heading(2, ("Value sets",)))
        items = [Item(("added: ", code(v.id), f" {v.title}")) for v in diff.valuesets_added]
        items += [Item(("removed: ", code(v.id), f" {v.title}")) for v in diff.valuesets_removed]
        for v in diff.valuesets_changed:
            details = [
                Item((f"{label}: ", ", ".join(values)))
                for label, values in (
                    ("codes added", v.codes_added),
                    ("codes removed", v.codes_removed),
                    ("names added", v.names_added),
                    ("names removed", v.names_removed),
                )
                if values
            ]
            details += [Item((code(c.path), ": ", _value(c.old), " → ", _value(c.new))) for c in v.other]
            items.append(Item(("changed: ", code(v.id), f" {v.title}"), tuple(details)))
        blocks.append(Bullets(tuple(items)))
    if diff.manifest:
        blocks += [
            Heading(2, ("Manifest",)),
            Table(
                ("field", "old", "new"),
                tuple(((code(c.path),), (_value(c.old),), (_value(c.new),)) for c in diff.manifest),
            ),
        ]
    if result is not None:
        blocks += _impact_blocks(result)
    return to_markdown(Page("diff.md", "Ruleset diff", tuple(blocks)))


def _impact_blocks(result: Impact) -> list[Block]:
    affected = result.affected
    blocks: list[Block] = [
        Heading(2, ("Impact on the corpus",)),
        Paragraph(
            (
                f"{len(result.cases)} cases assessed with both versions: "
                f"{len(result.status_changes)} change status, "
                f"{len(affected)} change in any way (status, findings, dose), "
                f"{len(result.cases) - len(affected)} are unchanged.",
            )
        ),
    ]
    if result.transitions():
        blocks += [
            Heading(3, ("Status changes",)),
            Table(
                ("old status", "new status", "cases"),
                tuple(((a,), (b,), (str(n),)) for a, b, n in result.transitions()),
            ),
        ]
    for which, title in (
        ("appeared", "Findings that appear"),
        ("vanished", "Findings that vanish"),
        ("altered", "Findings that change"),
    ):
        found = result.by_rule(which)
        if found:
            blocks += [
                Heading(3, (title,)),
                Table(
                    ("rule", "cases", "patients"),
                    tuple(((code(r),), (str(len(cs)),), tuple(_patients(cs))) for r, cs in found.items()),
                ),
            ]
    if affected:
        blocks += [
            Heading(3, ("Affected patients",)),
            Table(
                ("case", "patient", "status", "appeared", "vanished", "changed"),
                tuple(
                    (
                        (code(c.source),),
                        (c.label,),
                        (c.transition(),),
                        (", ".join(c.appeared) or "—",),
                        (", ".join(c.vanished) or "—",),
                        (", ".join([*c.altered, *(["dose"] if c.dose_changed else [])]) or "—",),
                    )
                    for c in affected
                ),
            ),
        ]
    errors = [c for c in result.cases if c.old_error or c.new_error]
    if errors:
        blocks += [
            Heading(3, ("Cases that could not be assessed",)),
            Bullets(tuple(Item((code(c.source), ": ", c.new_error or c.old_error or "")) for c in errors)),
        ]
    return blocks
