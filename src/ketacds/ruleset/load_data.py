"""The data files of a ruleset: value sets, tables, ``validity.yaml``, ``reference-facts.yaml``.

Part of the loader (:mod:`ketacds.ruleset.load`); each function reads one kind of file
and raises a :class:`~ketacds.errors.RulesetError` at the file and line of a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from ketacds.dosing.units import canonical_unit
from ketacds.errors import KetacdsError
from ketacds.models.facts import FACT_TYPES
from ketacds.models.inputs import canonical_system
from ketacds.ruleset import checks
from ketacds.ruleset.ir import (
    Code,
    CodeRange,
    Evidence,
    Fact,
    FactGap,
    Ingredient,
    Table,
    TableEntry,
    Validity,
    ValidityPair,
    ValidityRange,
    ValueSet,
)
from ketacds.ruleset.load_doc import ANY_JURISDICTION, FACTS_FILE, VALIDITY_FILE, RulesDoc, read_doc
from ketacds.ruleset.load_manifest import Manifest
from ketacds.yamldoc import DocPath, suggest

__all__ = ["load_facts", "load_tables", "load_validity", "load_valueset"]


def load_valueset(doc: RulesDoc, path: Path) -> ValueSet:
    """One ``valuesets/*.yaml`` file: its codes, ranges, names and ingredients."""
    doc.validate("valueset")
    d = doc.data
    if d["id"] != path.stem:
        raise doc.error(
            ("id",), f"value set id {d['id']!r} must match its file name {path.stem!r}", code=checks.VALUESET
        )

    def codes(key: str) -> tuple[Code, ...]:
        out = []
        for index, c in enumerate(d.get(key, [])):
            try:
                system = canonical_system(c["system"])
            except ValueError as error:
                raise doc.error((key, index, "system"), str(error), code=checks.VALUESET) from None
            out.append(Code(system=system, code=c["code"], display=c.get("display"), source=c.get("source")))
        return tuple(out)

    def ranges() -> tuple[CodeRange, ...]:
        out = []
        for index, r in enumerate(d.get("ranges", [])):
            try:
                system = canonical_system(r["system"])
            except ValueError as error:
                raise doc.error(("ranges", index, "system"), str(error), code=checks.VALUESET) from None
            start, end = r["from"].replace(".", "").upper(), r["to"].replace(".", "").upper()
            if len(start) != len(end) or start > end:
                raise doc.error(
                    ("ranges", index),
                    f"range {r['from']}–{r['to']}: both ends must have the same length and run upwards",
                    code=checks.VALUESET,
                )
            out.append(
                CodeRange(
                    system=system, start=start, end=end, display=r.get("display"), source=r.get("source")
                )
            )
        return tuple(out)

    ingredients = tuple(
        Ingredient(
            name=i["name"].strip().lower(), also=tuple(sorted({a.strip().lower() for a in i.get("also", [])}))
        )
        for i in sorted(d.get("ingredients", []), key=lambda i: i["name"].strip().lower())
    )
    names = {n.strip().lower() for n in d.get("names", [])}
    names |= {i.name for i in ingredients} | {a for i in ingredients for a in i.also}
    return ValueSet(
        id=d["id"],
        title=d["title"],
        description=" ".join(d["description"].split()) if d.get("description") else None,
        source=" ".join(d["source"].split()),
        codes=codes("codes"),
        prefixes=codes("prefixes"),
        names=tuple(sorted(names)),
        file=doc.name,
        ranges=ranges(),
        synonyms=tuple(sorted({n.strip().lower() for n in d.get("synonyms", [])})),
        ingredients=ingredients,
        known=d.get("known"),
    )


def load_tables(root: Path, valuesets: set[str]) -> tuple[Table, ...]:
    """``tables/*.yaml``: the tables that add a number field to coded facts."""
    folder = root / "tables"
    result = []
    outputs: set[tuple[str, str]] = set()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        doc = read_doc(path, root)
        doc.validate("table")
        d = doc.data
        if d["id"] != path.stem:
            raise doc.error(
                ("id",), f"table id {d['id']!r} must match its file name {path.stem!r}", code=checks.TABLE
            )
        fields = FACT_TYPES.get(d["fact"])
        if fields is None or "vs" not in fields:
            raise doc.error(("fact",), f"tables apply to coded facts, not {d['fact']!r}", code=checks.TABLE)
        if fields.get(d["input"]) != "number":
            raise doc.error(
                ("input",), f"{d['fact']} facts have no number field {d['input']!r}", code=checks.TABLE
            )
        for target in ((d["fact"], d["output"]), ("patient", d.get("total"))):
            if target[1] is None:
                continue
            if target[1] in FACT_TYPES[target[0]] or target in outputs:
                raise doc.error(
                    ("output",), f"{target[0]} facts already have a field {target[1]!r}", code=checks.TABLE
                )
            outputs.add((target[0], target[1]))
        entries = []
        for index, entry in enumerate(d["entries"]):
            if entry["in"] not in valuesets:
                raise doc.error(
                    ("entries", index, "in"),
                    f"unknown value set {entry['in']!r}",
                    suggest(entry["in"], valuesets),
                    code=checks.UNKNOWN_VALUESET,
                )
            entries.append(
                TableEntry(valueset=entry["in"], value=Decimal(entry["value"]), note=entry.get("note"))
            )
        result.append(
            Table(
                id=d["id"],
                title=d["title"],
                source=" ".join(d["source"].split()),
                fact=d["fact"],
                input=d["input"],
                output=d["output"],
                total=d.get("total"),
                label=" ".join(d["label"].split()) if "label" in d else None,
                operation=d.get("operation", "multiply"),
                scale=Decimal(d.get("scale", 1)),
                entries=tuple(entries),
                file=doc.name,
            )
        )
    return tuple(result)


#: The fact types whose number fields may have a plausible range in ``fields``.
_RANGED_FACTS = ("patient", "plan", "order", "medication", "trial")
#: The fields whose input may say when they were measured (``Quantity.time``).
_TIMED_FIELDS = (("patient", "weight_kg"), ("patient", "height_cm"), ("patient", "pregnant"))


def _evidence(
    doc: RulesDoc, at: DocPath, items: Iterable[Mapping[str, Any]], sources: set[str]
) -> tuple[Evidence, ...]:
    out = []
    for index, e in enumerate(items):
        if e["source"] not in sources:
            raise doc.error(
                (*at, index, "source"),
                f"unknown source {e['source']!r}",
                suggest(e["source"], sources),
                code=checks.UNKNOWN_SOURCE,
            )
        out.append(Evidence(source=e["source"], section=e.get("section")))
    return tuple(out)


def _bounds(d: Mapping[str, Any]) -> dict[str, Decimal]:
    return {op: Decimal(str(d[op])) for op in ("gt", "gte", "lt", "lte") if op in d}


def _check_bounds(doc: RulesDoc, at: DocPath, bounds: Mapping[str, Decimal]) -> None:
    if ("gt" in bounds and "gte" in bounds) or ("lt" in bounds and "lte" in bounds):
        raise doc.error(
            at, "give one lower bound (gt or gte) and one upper bound (lt or lte)", code=checks.VALIDITY
        )
    low = bounds.get("gt", bounds.get("gte"))
    high = bounds.get("lt", bounds.get("lte"))
    if low is not None and high is not None and low >= high:
        raise doc.error(
            at, f"the lower bound {low} is not below the upper bound {high}", code=checks.VALIDITY
        )


def _validity_range(
    doc: RulesDoc,
    at: DocPath,
    entry: Mapping[str, Any],
    fact: str,
    key: str,
    unit: str | None,
    sources: set[str],
) -> ValidityRange:
    """One plausible range (and validity window) of validity.yaml, its bounds checked."""
    bounds = _bounds(entry.get("plausible", {}))
    _check_bounds(doc, (*at, "plausible"), bounds)
    hours = entry.get("current_within_hours")
    return ValidityRange(
        fact=fact,
        key=key,
        unit=unit,
        current_hours=Decimal(str(hours)) if hours is not None else None,
        rationale=" ".join(entry["rationale"].split()),
        evidence=_evidence(doc, (*at, "evidence"), entry["evidence"], sources),
        file=doc.name,
        line=doc.line(at),
        gt=bounds.get("gt"),
        gte=bounds.get("gte"),
        lt=bounds.get("lt"),
        lte=bounds.get("lte"),
    )


def load_validity(root: Path, valuesets: set[str], sources: set[str]) -> Validity | None:
    """``validity.yaml``: plausible ranges and validity windows (``None`` when the file is absent)."""
    path = root / VALIDITY_FILE
    if not path.is_file():
        return None
    doc = read_doc(path, root)
    doc.validate("validity")
    d = doc.data
    ranges: list[ValidityRange] = []
    seen: dict[tuple[str, str], int | None] = {}

    def remember(at: DocPath, key: tuple[str, str]) -> None:
        if key in seen:
            raise doc.error(
                at, f"{key[0]} {key[1]!r} has a range already (line {seen[key]})", code=checks.VALIDITY
            )
        seen[key] = doc.line(at)

    for index, o in enumerate(d["observations"]):
        at: DocPath = ("observations", index)
        if o["in"] not in valuesets:
            raise doc.error(
                (*at, "in"),
                f"unknown value set {o['in']!r}",
                suggest(o["in"], valuesets),
                code=checks.UNKNOWN_VALUESET,
            )
        remember((*at, "in"), ("observation", o["in"]))
        unit = o.get("unit")
        if unit is not None:
            try:
                unit = canonical_unit(unit)
            except KetacdsError as error:
                raise doc.error((*at, "unit"), str(error), code=checks.VALIDITY) from None
        ranges.append(_validity_range(doc, at, o, "observation", o["in"], unit, sources))
    for index, f in enumerate(d["fields"]):
        at = ("fields", index)
        fact, _, field = f["field"].partition(".")
        if fact not in _RANGED_FACTS:
            raise doc.error(
                (*at, "field"),
                f"ranges apply to fields of {', '.join(_RANGED_FACTS)}, not {fact!r}",
                suggest(fact, _RANGED_FACTS),
                code=checks.VALIDITY,
            )
        numbers = [name for name, kind in FACT_TYPES[fact].items() if kind == "number"]
        if (fact, field) in _TIMED_FIELDS and "plausible" not in f:
            numbers.append(field)  # a window only (patient.pregnant)
        if field not in numbers:
            raise doc.error(
                (*at, "field"),
                f"{fact} facts have no number field {field!r}",
                suggest(field, numbers),
                code=checks.VALIDITY,
            )
        remember((*at, "field"), (fact, field))
        if "current_within_hours" in f and (fact, field) not in _TIMED_FIELDS:
            raise doc.error(
                (*at, "current_within_hours"),
                f"only {', '.join(f'{a}.{b}' for a, b in _TIMED_FIELDS)} carry a time to check a window on",
                code=checks.VALIDITY,
            )
        ranges.append(_validity_range(doc, at, f, fact, field, None, sources))
    pairs = []
    for index, p in enumerate(d.get("pairs", [])):
        at = ("pairs", index)
        for key in ("lower", "upper"):
            if p[key] not in valuesets:
                raise doc.error(
                    (*at, key),
                    f"unknown value set {p[key]!r}",
                    suggest(p[key], valuesets),
                    code=checks.UNKNOWN_VALUESET,
                )
        pairs.append(
            ValidityPair(
                lower=p["lower"],
                upper=p["upper"],
                rationale=" ".join(p["rationale"].split()),
                evidence=_evidence(doc, (*at, "evidence"), p["evidence"], sources),
            )
        )
    future = d["future"]
    return Validity(
        future_minutes=Decimal(str(future["minutes"])),
        future_rationale=" ".join(future["rationale"].split()),
        future_evidence=_evidence(doc, ("future", "evidence"), future["evidence"], sources),
        ranges=tuple(sorted(ranges, key=lambda r: (r.fact, r.key))),
        pairs=tuple(pairs),
        file=doc.name,
    )


def load_facts(root: Path, manifest: Manifest) -> tuple[tuple[Fact, ...], tuple[str, ...]]:
    """``reference-facts.yaml``: the facts of the clinical reference (empty when the file is absent).

    Each fact's routes and jurisdictions are the manifest's; each manifest concept is a fact.
    """
    path = root / FACTS_FILE
    if not path.is_file():
        return (), ()
    doc = read_doc(path, root)
    doc.validate("reference-facts")
    known = {j.id for j in manifest.jurisdictions}

    def scope(at: DocPath, routes: list[str], places: list[str]) -> None:
        for i, route in enumerate(routes):
            if route not in manifest.routes:
                raise doc.error(
                    (*at, "routes", i),
                    f"unknown route {route!r}",
                    suggest(route, manifest.routes),
                    code=checks.FACTS,
                )
        for i, j in enumerate(places):
            if j != ANY_JURISDICTION and j not in known:
                raise doc.error(
                    (*at, "jurisdictions", i),
                    f"unknown jurisdiction {j!r}",
                    suggest(j, known | {ANY_JURISDICTION}),
                    code=checks.FACTS,
                )

    facts: dict[str, Fact] = {}
    for index, f in enumerate(doc.data["facts"]):
        at: DocPath = ("facts", index)
        if f["id"] in facts:
            raise doc.error((*at, "id"), f"fact {f['id']} is listed twice", code=checks.FACTS)
        scope(at, f["routes"], f.get("jurisdictions", []))
        gaps = []
        for g, gap in enumerate(f.get("gaps", [])):
            scope((*at, "gaps", g), gap.get("routes", []), gap.get("jurisdictions", []))
            gaps.append(
                FactGap(
                    why=" ".join(gap["why"].split()),
                    routes=tuple(gap.get("routes", ())),
                    jurisdictions=tuple(gap.get("jurisdictions", ())),
                )
            )
        facts[f["id"]] = Fact(
            id=f["id"],
            chapter=f["chapter"],
            title=" ".join(f["title"].split()),
            routes=tuple(r for r in manifest.routes if r in f["routes"]),
            confidence=f["confidence"],
            jurisdictions=tuple(f.get("jurisdictions", [ANY_JURISDICTION])),
            partial=" ".join(f["partial"].split()) if f.get("partial") else None,
            not_encoded=" ".join(f["not_encoded"].split()) if f.get("not_encoded") else None,
            gaps=tuple(gaps),
            line=doc.line(at),
        )
    for index, concept in enumerate(manifest.concepts):
        if concept.id not in facts:
            raise manifest.doc.error(
                ("concepts", index, "id"),
                f"concept {concept.id} is not a fact of {FACTS_FILE}",
                suggest(concept.id, facts),
                code=checks.FACTS,
            )
    notes = tuple(" ".join(n.split()) for n in doc.data.get("notes", []))
    return tuple(facts.values()), notes
