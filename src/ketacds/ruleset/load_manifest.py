"""``manifest.yaml``: routes, jurisdictions, sources, status table, concepts, groups, refusals.

:class:`Manifest` reads and checks the manifest; :meth:`Manifest.context` is what each
rule is then checked against (:class:`Context`), and :meth:`Manifest.ruleset` puts the
loaded parts together. Part of the loader (:mod:`ketacds.ruleset.load`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ketacds.errors import RulesetError
from ketacds.models.facts import FACT_TYPES, FieldKind
from ketacds.ruleset import checks
from ketacds.ruleset.ir import (
    Concept,
    Fact,
    Follows,
    Group,
    Jurisdiction,
    Refusal,
    Rule,
    RuleSet,
    Source,
    StatusLevel,
    StatusTable,
    Table,
    Validity,
    ValueSet,
)
from ketacds.ruleset.load_doc import ANY_JURISDICTION, RulesDoc, read_doc
from ketacds.vocabulary import ROUTES
from ketacds.yamldoc import DocPath, suggest

__all__ = ["Context", "Manifest", "fact_vocabulary", "status_table"]


class Manifest:
    """The manifest, read and checked: everything rules are checked against."""

    def __init__(self, root: Path) -> None:
        manifest_path = root / "manifest.yaml"
        if not manifest_path.is_file():
            raise RulesetError("no manifest.yaml here", file=str(root), code=checks.MANIFEST)
        doc = self.doc = read_doc(manifest_path, root)
        doc.validate("manifest")
        m = self.data = doc.data
        self.routes = tuple(r["id"] for r in m["routes"])
        if set(self.routes) != set(ROUTES):
            raise doc.error(("routes",), f"routes must be exactly {', '.join(ROUTES)}", code=checks.MANIFEST)
        self.jurisdictions = tuple(
            Jurisdiction(
                id=j["id"],
                title=j["title"],
                parent=j.get("parent"),
                follows=tuple(
                    Follows(route=route, label=f["label"], basis=" ".join(f["basis"].split()))
                    for route, f in sorted(j.get("follows", {}).items())
                ),
            )
            for j in m["jurisdictions"]
        )
        known = {j.id for j in self.jurisdictions}
        for index, j in enumerate(self.jurisdictions):
            if j.parent is not None and j.parent not in known:
                raise doc.error(
                    ("jurisdictions", index, "parent"),
                    f"unknown jurisdiction {j.parent!r}",
                    suggest(j.parent, known),
                    code=checks.MANIFEST,
                )
        self._check_follows()
        self.concepts = self._concepts()
        self.groups = self._groups()
        self.refusals = self._refusals()
        self.sources = tuple(
            Source(id=s["id"], title=s["title"], confidence_note=s.get("confidence_note"))
            for s in m["sources"]
        )
        self.status = status_table(doc)

    def _check_follows(self) -> None:
        """Each followed label is a known jurisdiction that follows no other label for that route."""
        by_id = {j.id: j for j in self.jurisdictions}
        for index, j in enumerate(self.jurisdictions):
            for f in j.follows:
                at: DocPath = ("jurisdictions", index, "follows", f.route)
                if f.route not in self.routes:
                    raise self.doc.error(
                        at, f"unknown route {f.route!r}", suggest(f.route, self.routes), code=checks.MANIFEST
                    )
                if f.label not in by_id:
                    raise self.doc.error(
                        (*at, "label"),
                        f"unknown jurisdiction {f.label!r}",
                        suggest(f.label, by_id),
                        code=checks.MANIFEST,
                    )
                if f.label == j.id or j.id in self._scope_of(f.label):
                    raise self.doc.error(
                        (*at, "label"),
                        f"{j.id} cannot follow its own label {f.label!r}",
                        code=checks.MANIFEST,
                    )
                if any(other.route == f.route for other in by_id[f.label].follows):
                    raise self.doc.error(
                        (*at, "label"),
                        f"{f.label} itself follows another label for {f.route}: name that label directly",
                        code=checks.MANIFEST,
                    )

    def _scope_of(self, jurisdiction: str) -> list[str]:
        parents = {j.id: j.parent for j in self.jurisdictions}
        scope: list[str] = []
        current: str | None = jurisdiction
        while current is not None and current not in scope:
            scope.append(current)
            current = parents.get(current)
        return scope

    def _concepts(self) -> tuple[Concept, ...]:
        known = {j.id for j in self.jurisdictions}
        concepts: list[Concept] = []
        seen: set[str] = set()
        for index, c in enumerate(self.data.get("concepts", [])):
            at: DocPath = ("concepts", index)
            if c["id"] in seen:
                raise self.doc.error(
                    (*at, "id"), f"concept {c['id']} is declared twice", code=checks.MANIFEST
                )
            seen.add(c["id"])
            for i, route in enumerate(c["routes"]):
                if route not in self.routes:
                    raise self.doc.error(
                        (*at, "routes", i),
                        f"unknown route {route!r}",
                        suggest(route, self.routes),
                        code=checks.MANIFEST,
                    )
            places = tuple(c.get("jurisdictions", [ANY_JURISDICTION]))
            for i, j in enumerate(places):
                if j != ANY_JURISDICTION and j not in known:
                    raise self.doc.error(
                        (*at, "jurisdictions", i),
                        f"unknown jurisdiction {j!r}",
                        suggest(j, known | {ANY_JURISDICTION}),
                        code=checks.MANIFEST,
                    )
            if ANY_JURISDICTION in places and len(places) > 1:
                raise self.doc.error(
                    (*at, "jurisdictions"), f"{ANY_JURISDICTION!r} stands alone", code=checks.MANIFEST
                )
            concepts.append(
                Concept(
                    id=c["id"],
                    title=" ".join(c["title"].split()),
                    routes=tuple(r for r in self.routes if r in c["routes"]),
                    jurisdictions=places,
                    note=" ".join(c["note"].split()) if c.get("note") else None,
                    line=self.doc.line(at),
                )
            )
        return tuple(concepts)

    def _groups(self) -> tuple[Group, ...]:
        groups: list[Group] = []
        for index, g in enumerate(self.data.get("groups", [])):
            at: DocPath = ("groups", index)
            if any(other.id == g["id"] for other in groups):
                raise self.doc.error(
                    (*at, "id"), f"group {g['id']} is declared twice", code=checks.UNKNOWN_GROUP
                )
            groups.append(
                Group(
                    id=g["id"],
                    title=" ".join(g["title"].split()),
                    note=" ".join(g["note"].split()) if g.get("note") else None,
                    line=self.doc.line(at),
                )
            )
        return tuple(groups)

    def _refusals(self) -> tuple[Refusal, ...]:
        known = {j.id for j in self.jurisdictions}
        refusals: list[Refusal] = []
        for index, r in enumerate(self.data.get("refusals", [])):
            at: DocPath = ("refusals", index)
            if r["route"] not in self.routes:
                raise self.doc.error(
                    (*at, "route"),
                    f"unknown route {r['route']!r}",
                    suggest(r["route"], self.routes),
                    code=checks.MANIFEST,
                )
            if r["jurisdiction"] != ANY_JURISDICTION and r["jurisdiction"] not in known:
                raise self.doc.error(
                    (*at, "jurisdiction"),
                    f"unknown jurisdiction {r['jurisdiction']!r}",
                    suggest(r["jurisdiction"], known | {ANY_JURISDICTION}),
                    code=checks.MANIFEST,
                )
            refusal = Refusal(
                route=r["route"],
                jurisdiction=r["jurisdiction"],
                reason=" ".join(r["reason"].split()),
                line=self.doc.line(at),
            )
            if any((x.route, x.jurisdiction) == (refusal.route, refusal.jurisdiction) for x in refusals):
                raise self.doc.error(
                    at, f"{refusal.route} in {refusal.jurisdiction} is refused twice", code=checks.MANIFEST
                )
            refusals.append(refusal)
        return tuple(refusals)

    def context(self, valuesets: set[str], tables: Iterable[Table], facts: Iterable[Fact] = ()) -> Context:
        """What the rules are checked against, given the value sets, tables and facts loaded."""
        return Context(
            vocabulary=fact_vocabulary(tables),
            routes=set(self.routes),
            jurisdictions={j.id for j in self.jurisdictions},
            sources={s.id for s in self.sources},
            valuesets=valuesets,
            status=self.status,
            concepts={c.id: c for c in self.concepts},
            facts={f.id: f for f in facts},
            groups={g.id for g in self.groups},
        )

    def ruleset(
        self,
        rules: Iterable[Rule],
        valuesets: Iterable[ValueSet],
        tables: Iterable[Table],
        validity: Validity | None = None,
        facts: Iterable[Fact] = (),
        fact_notes: Iterable[str] = (),
    ) -> RuleSet:
        """The ruleset of this manifest with the parts loaded beside it."""
        return RuleSet(
            name=self.data["name"],
            version=self.data["version"],
            description=" ".join(self.data["description"].split()),
            routes=self.routes,
            jurisdictions=self.jurisdictions,
            sources=self.sources,
            status=self.status,
            rules=tuple(sorted(rules, key=lambda r: r.id)),
            valuesets=tuple(valuesets),
            tables=tuple(tables),
            concepts=self.concepts,
            refusals=self.refusals,
            groups=self.groups,
            validity=validity,
            facts=tuple(facts),
            fact_notes=tuple(fact_notes),
            route_drugs=tuple((r["id"], r["drug"]) for r in self.data["routes"] if "drug" in r),
        )


def status_table(manifest: RulesDoc) -> StatusTable:
    """The manifest's status table: every status it names is one of its levels."""
    data = manifest.data["status"]
    levels = tuple(
        StatusLevel(name=x["name"], meaning=" ".join(x["meaning"].split())) for x in data["levels"]
    )
    names = [level.name for level in levels]
    if len(set(names)) != len(names):
        raise manifest.error(("status", "levels"), "status levels must be unique", code=checks.MANIFEST)
    places: list[tuple[DocPath, str]] = [(("status", "default"), data["default"])]
    places += [(("status", "blocking", index), name) for index, name in enumerate(data["blocking"])]
    places += [(("status", "no_dose", index), name) for index, name in enumerate(data.get("no_dose", []))]
    places += [(("status", "severities", severity), name) for severity, name in data["severities"].items()]
    for at, name in places:
        if name not in names:
            raise manifest.error(at, f"unknown status {name!r}", suggest(name, names), code=checks.MANIFEST)
    return StatusTable(
        levels=levels,
        severities=tuple(sorted(data["severities"].items())),
        default=data["default"],
        blocking=tuple(data["blocking"]),
        no_dose=tuple(data.get("no_dose", ())),
    )


def fact_vocabulary(tables: Iterable[Table]) -> dict[str, dict[str, FieldKind]]:
    """The fact types and fields rules may test: the built-in ones plus table outputs."""
    vocabulary = {fact: dict(fields) for fact, fields in FACT_TYPES.items()}
    for table in tables:
        vocabulary[table.fact][table.output] = "number"
        if table.total:
            vocabulary["patient"][table.total] = "number"
    return vocabulary


class Context:
    """What a rule may refer to."""

    def __init__(
        self,
        *,
        vocabulary: dict[str, dict[str, FieldKind]],
        routes: set[str],
        jurisdictions: set[str],
        sources: set[str],
        valuesets: set[str],
        status: StatusTable,
        concepts: Mapping[str, Concept],
        facts: Mapping[str, Fact],
        groups: set[str] | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.routes = routes
        self.jurisdictions = jurisdictions
        self.sources = sources
        self.valuesets = valuesets
        self.status = status
        self.concepts = concepts
        self.facts = facts
        self.groups = groups or set()
