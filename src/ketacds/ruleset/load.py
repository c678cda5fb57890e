"""Load a ruleset directory (YAML + JSON Schema) into the intermediate form.

A ruleset directory holds ``manifest.yaml`` (name, version, routes, jurisdictions,
sources register, status table, and the list of rule files), the rule files, and
``valuesets/*.yaml``. Every problem is a :class:`~ketacds.errors.RulesetError`
that names the file and line, with a did-you-mean suggestion where a name is close,
and the stable code of the check that failed (``ruleset/checks.py``).

:func:`load_ruleset` stops at the first problem; :func:`load_checked` runs the same
checks but goes on past each problem it can, for the linter (``ruleset/lint.py``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import attrs
import jsonschema

from ketacds._yaml import Path as DocPath
from ketacds._yaml import YamlProblem, load_yaml
from ketacds.dosing.functions import FUNCTIONS, PARAMETERS
from ketacds.dosing.units import canonical_unit
from ketacds.errors import KetacdsError, RulesetError
from ketacds.models.facts import FACT_TYPES, FLAG, FieldKind
from ketacds.models.inputs import canonical_system
from ketacds.ruleset import checks, plan
from ketacds.ruleset.ir import (
    All,
    AnyOf,
    Code,
    CodeRange,
    Concept,
    Condition,
    DoseSpec,
    Evidence,
    Fact,
    FactGap,
    FindingSpec,
    Follows,
    Group,
    Ingredient,
    Jurisdiction,
    Not,
    Op,
    Pattern,
    Ref,
    Refusal,
    Rule,
    RuleSet,
    Scalar,
    Source,
    StatusLevel,
    StatusTable,
    Table,
    TableEntry,
    Test,
    Validity,
    ValidityPair,
    ValidityRange,
    ValueSet,
)
from ketacds.vocabulary import DATA_GAP, DERIVATION, DOSING, ROUTES, UNCONFIRMED

__all__ = [
    "ANY_JURISDICTION",
    "Checked",
    "RuleFile",
    "bundled_rules_dir",
    "fact_vocabulary",
    "load_checked",
    "load_ruleset",
    "schema",
]

#: Written in a rule's ``jurisdictions`` to mean "wherever the engine is used".
ANY_JURISDICTION = "any"

#: The patient-fact fields that describe the treatment context, not the patient: the only
#: fields a grouped rule's condition may test (a group holds what every patient on the
#: route gets, never a patient-specific finding).
CONTEXT_FIELDS = frozenset({"setting"})

_OPS_BY_KIND: dict[str, set[str]] = {
    "number": {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present"},
    "text": {"eq", "ne", "in", "not_in", "present"},
    "bool": {"eq", "ne", "present"},
}


def bundled_rules_dir() -> Path:
    """Return the rulesets shipped with ketacds (inside the wheel, or the source tree)."""
    packaged = Path(str(resources.files("ketacds"))) / "rulesets"
    if (packaged / "manifest.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "rulesets"


@cache
def schema(name: str) -> dict[str, Any]:
    """Return one of the bundled JSON Schemas: ``rules``, ``valueset`` or ``manifest``."""
    text = resources.files("ketacds.ruleset").joinpath(f"schemas/{name}.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _suggest(name: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Doc:
    """One YAML file with its line map, to raise errors at the right line."""

    def __init__(self, path: Path, root: Path) -> None:
        self.name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise RulesetError(f"cannot read: {error.strerror}", file=self.name, code=checks.YAML) from None
        self.key = hashlib.sha256(raw).digest()
        data, self.lines = _parsed(raw, self.key, self.name)
        # The cached parse is shared: each document gets its own copy of the data.
        self.data = copy.deepcopy(data)

    def line(self, path: DocPath) -> int | None:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: DocPath, reason: str, suggestion: str | None = None, *, code: str) -> RulesetError:
        return RulesetError(reason, file=self.name, line=self.line(path), suggestion=suggestion, code=code)

    def _schema_errors(self, schema_name: str) -> list[jsonschema.ValidationError]:
        found = _VALIDATED.get((self.key, schema_name))
        if found is None:
            validator = _validator(schema_name)
            found = sorted(
                validator.iter_errors(self.data), key=lambda e: (len(e.path), list(map(str, e.path)))
            )
            if len(_VALIDATED) >= _PARSED_SIZE:
                _VALIDATED.pop(next(iter(_VALIDATED)))
            _VALIDATED[self.key, schema_name] = found
        return found

    def validate(self, schema_name: str) -> None:
        """Raise the most relevant schema error, if any."""
        errors = self._schema_errors(schema_name)
        if errors:
            raise self._schema_error(jsonschema.exceptions.best_match(errors))

    def schema_errors(self, schema_name: str) -> list[tuple[DocPath, RulesetError]]:
        """Every schema error (the most relevant reading of each), with where it is."""
        found = []
        for error in self._schema_errors(schema_name):
            best = jsonschema.exceptions.best_match([error])
            found.append((tuple(error.absolute_path), self._schema_error(best)))
        return found

    def _schema_error(self, error: jsonschema.ValidationError) -> RulesetError:
        at: DocPath = tuple(error.absolute_path)
        where = ".".join(map(str, at)) or "(top level)"
        instance = error.instance
        if error.validator == "additionalProperties" and isinstance(instance, dict):
            known = set(cast(dict[str, Any], error.schema).get("properties", {}))
            unknown = sorted(set(instance) - known)
            if unknown:
                key = unknown[0]
                return self.error(
                    (*at, key), f"{where}: unknown key {key!r}", _suggest(key, known), code=checks.UNKNOWN_KEY
                )
        no_evidence = (error.validator == "required" and "evidence" in error.message) or (
            at[-1:] == ("evidence",) and error.validator == "minItems"
        )
        code = checks.NO_EVIDENCE if no_evidence else checks.SCHEMA
        return self.error(at, f"{where}: {error.message}", code=code)


#: Parsed YAML files by the SHA-256 of their bytes: a test (or a linter run) that copies
#: the rules and changes one file parses that one file again, not all of them.
_PARSED: dict[bytes, tuple[Any, dict[DocPath, int]]] = {}
_PARSED_SIZE = 512
#: Schema errors by (content digest, schema name): the same content validates the same way.
_VALIDATED: dict[tuple[bytes, str], list[jsonschema.ValidationError]] = {}


def _parsed(raw: bytes, key: bytes, name: str) -> tuple[Any, dict[DocPath, int]]:
    """The YAML in ``raw`` (whose SHA-256 is ``key``) as plain data and a line map, parsed once."""
    hit = _PARSED.get(key)
    if hit is not None:
        return hit
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise RulesetError(
            f"not UTF-8 text (byte {error.start + 1})", file=name, line=line, code=checks.YAML
        ) from None
    try:
        hit = load_yaml(text)
    except YamlProblem as problem:
        raise RulesetError(problem.reason, file=name, line=problem.line, code=checks.YAML) from None
    if len(_PARSED) >= _PARSED_SIZE:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = hit
    return hit


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


_CACHE: dict[str, RuleSet] = {}
_CACHE_SIZE = 8


def _content_key(root: Path) -> str:
    """A digest of every YAML file under ``root``, by relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_ruleset(directory: Path | str | None = None) -> RuleSet:
    """Load, validate and return the ruleset in ``directory`` (default: the bundled one).

    Parsing YAML is slow, so rulesets are cached by the exact bytes of their files: a
    changed file is always loaded afresh, and an unchanged one is not parsed twice.

    Raises:
        RulesetError: with the file and line of the first problem found.
    """
    root = Path(directory) if directory is not None else bundled_rules_dir()
    key = _content_key(root) if root.is_dir() else ""
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    ruleset = _load(root, _Problems(collect=False)).ruleset
    assert ruleset is not None  # a problem would have raised
    if key:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = ruleset
    return ruleset


@attrs.frozen
class RuleFile:
    """A rule file of a ruleset, as the manifest lists it: its name and description."""

    name: str
    description: str | None


@attrs.frozen
class Checked:
    """What :func:`load_checked` found: the rules that loaded, and every problem met.

    ``ruleset`` holds every rule and value set that loaded without a problem; it is
    ``None`` when the manifest itself could not be read. ``files`` lists the rule
    files in the manifest's order.
    """

    root: Path
    ruleset: RuleSet | None
    files: tuple[RuleFile, ...]
    problems: tuple[RulesetError, ...]


def load_checked(directory: Path | str | None = None) -> Checked:
    """Load a ruleset as :func:`load_ruleset` does, but collect problems instead of stopping.

    Each value set and each rule is checked on its own, so one mistake hides no other;
    what depends on a broken part (the rules of a file that is not YAML, everything
    when the manifest is broken) is left out rather than guessed.
    """
    root = Path(directory) if directory is not None else bundled_rules_dir()
    return _load(root, _Problems(collect=True))


class _Problems:
    """Where problems go: raised at once (:func:`load_ruleset`) or collected (:func:`load_checked`)."""

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.found: list[RulesetError] = []

    def report(self, error: RulesetError) -> None:
        if not self.collect:
            raise error
        self.found.append(error)


class _Manifest:
    """The manifest, read and checked: everything rules are checked against."""

    def __init__(self, root: Path) -> None:
        manifest_path = root / "manifest.yaml"
        if not manifest_path.is_file():
            raise RulesetError("no manifest.yaml here", file=str(root), code=checks.MANIFEST)
        doc = self.doc = _Doc(manifest_path, root)
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
                    _suggest(j.parent, known),
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
        self.status = _status_table(doc)

    def _check_follows(self) -> None:
        """Each followed label is a known jurisdiction that follows no other label for that route."""
        by_id = {j.id: j for j in self.jurisdictions}
        for index, j in enumerate(self.jurisdictions):
            for f in j.follows:
                at: DocPath = ("jurisdictions", index, "follows", f.route)
                if f.route not in self.routes:
                    raise self.doc.error(
                        at, f"unknown route {f.route!r}", _suggest(f.route, self.routes), code=checks.MANIFEST
                    )
                if f.label not in by_id:
                    raise self.doc.error(
                        (*at, "label"),
                        f"unknown jurisdiction {f.label!r}",
                        _suggest(f.label, by_id),
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
                        _suggest(route, self.routes),
                        code=checks.MANIFEST,
                    )
            places = tuple(c.get("jurisdictions", [ANY_JURISDICTION]))
            for i, j in enumerate(places):
                if j != ANY_JURISDICTION and j not in known:
                    raise self.doc.error(
                        (*at, "jurisdictions", i),
                        f"unknown jurisdiction {j!r}",
                        _suggest(j, known | {ANY_JURISDICTION}),
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
                    _suggest(r["route"], self.routes),
                    code=checks.MANIFEST,
                )
            if r["jurisdiction"] != ANY_JURISDICTION and r["jurisdiction"] not in known:
                raise self.doc.error(
                    (*at, "jurisdiction"),
                    f"unknown jurisdiction {r['jurisdiction']!r}",
                    _suggest(r["jurisdiction"], known | {ANY_JURISDICTION}),
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

    def context(self, valuesets: set[str], tables: Iterable[Table], facts: Iterable[Fact] = ()) -> _Context:
        return _Context(
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


def _load(root: Path, problems: _Problems) -> Checked:
    try:
        manifest = _Manifest(root)
    except RulesetError as error:
        problems.report(error)
        return Checked(root=root, ruleset=None, files=(), problems=tuple(problems.found))

    valuesets: list[ValueSet] = []
    folder = root / "valuesets"
    paths = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    for path in paths:
        try:
            valuesets.append(_valueset(_Doc(path, root), path))
        except RulesetError as error:
            problems.report(error)
    tables: tuple[Table, ...] = ()
    try:
        tables = _load_tables(root, {path.stem for path in paths})
    except RulesetError as error:
        problems.report(error)
    facts: tuple[Fact, ...] = ()
    notes: tuple[str, ...] = ()
    try:
        facts, notes = _load_facts(root, manifest)
    except RulesetError as error:
        problems.report(error)
    # A value set that failed is still known by name, so that rules citing it add no noise.
    context = manifest.context({path.stem for path in paths}, tables, facts)
    for index, route in enumerate(manifest.data["routes"]):
        if "drug" in route and route["drug"] not in context.valuesets:
            problems.report(
                manifest.doc.error(
                    ("routes", index, "drug"),
                    f"unknown value set {route['drug']!r}",
                    _suggest(route["drug"], context.valuesets),
                    code=checks.MANIFEST,
                )
            )

    rules: list[Rule] = []
    files: list[RuleFile] = []
    seen: dict[str, Rule] = {}
    for index, file_name in enumerate(manifest.data["files"]):
        path = root / file_name
        if not path.is_file():
            problems.report(
                manifest.doc.error(
                    ("files", index), f"rule file {file_name} does not exist", code=checks.MANIFEST
                )
            )
            continue
        try:
            doc = _Doc(path, root)
            if not problems.collect:
                doc.validate("rules")
        except RulesetError as error:
            problems.report(error)
            continue
        description = doc.data.get("description") if isinstance(doc.data, dict) else None
        files.append(
            RuleFile(name=doc.name, description=" ".join(description.split()) if description else None)
        )
        for position, data in _valid_rules(doc, problems):
            try:
                rule = _rule(doc, ("rules", position), data, context)
            except RulesetError as error:
                problems.report(error)
                continue
            if rule.id in seen:
                first = seen[rule.id]
                problems.report(
                    doc.error(
                        ("rules", position, "id"),
                        f"duplicate rule id {rule.id} (first defined at {first.file}:{first.line})",
                        code=checks.DUPLICATE_ID,
                    )
                )
                continue
            seen[rule.id] = rule
            rules.append(rule)
    validity: Validity | None = None
    try:
        validity = _load_validity(root, {path.stem for path in paths}, {s.id for s in manifest.sources})
    except RulesetError as error:
        problems.report(error)
    ruleset = manifest.ruleset(rules, valuesets, tables, validity, facts, notes)
    for problem in _flag_problems(ruleset):
        problems.report(problem)
    try:
        plan.stratify(ruleset.rules)
    except RulesetError as error:
        problems.report(error)
    return Checked(root=root, ruleset=ruleset, files=tuple(files), problems=tuple(problems.found))


def _valid_rules(doc: _Doc, problems: _Problems) -> list[tuple[int, Any]]:
    """The rules of a file that pass the schema (all of them when loading strictly: it was validated)."""
    if not problems.collect:
        return list(enumerate(doc.data["rules"]))
    broken: set[int] = set()
    whole_file = False
    for at, error in doc.schema_errors("rules"):
        problems.report(error)
        if len(at) >= 2 and at[0] == "rules" and isinstance(at[1], int):
            broken.add(at[1])
        elif at[:1] in ((), ("rules",)):
            whole_file = True
    if whole_file or not isinstance(doc.data, dict) or not isinstance(doc.data.get("rules"), list):
        return []
    return [(position, data) for position, data in enumerate(doc.data["rules"]) if position not in broken]


def _status_table(manifest: _Doc) -> StatusTable:
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
            raise manifest.error(at, f"unknown status {name!r}", _suggest(name, names), code=checks.MANIFEST)
    return StatusTable(
        levels=levels,
        severities=tuple(sorted(data["severities"].items())),
        default=data["default"],
        blocking=tuple(data["blocking"]),
        no_dose=tuple(data.get("no_dose", ())),
    )


def _valueset(doc: _Doc, path: Path) -> ValueSet:
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


def fact_vocabulary(tables: Iterable[Table]) -> dict[str, dict[str, FieldKind]]:
    """The fact types and fields rules may test: the built-in ones plus table outputs."""
    vocabulary = {fact: dict(fields) for fact, fields in FACT_TYPES.items()}
    for table in tables:
        vocabulary[table.fact][table.output] = "number"
        if table.total:
            vocabulary["patient"][table.total] = "number"
    return vocabulary


def _load_tables(root: Path, valuesets: set[str]) -> tuple[Table, ...]:
    folder = root / "tables"
    result = []
    outputs: set[tuple[str, str]] = set()
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        doc = _Doc(path, root)
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
                    _suggest(entry["in"], valuesets),
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


#: The file of plausible ranges and validity windows, beside the manifest.
VALIDITY_FILE = "validity.yaml"
#: The fact types whose number fields may have a plausible range in ``fields``.
_RANGED_FACTS = ("patient", "plan", "order", "medication", "trial")
#: The fields whose input may say when they were measured (``Quantity.time``).
_TIMED_FIELDS = (("patient", "weight_kg"), ("patient", "height_cm"), ("patient", "pregnant"))


def _evidence(
    doc: _Doc, at: DocPath, items: Iterable[Mapping[str, Any]], sources: set[str]
) -> tuple[Evidence, ...]:
    out = []
    for index, e in enumerate(items):
        if e["source"] not in sources:
            raise doc.error(
                (*at, index, "source"),
                f"unknown source {e['source']!r}",
                _suggest(e["source"], sources),
                code=checks.UNKNOWN_SOURCE,
            )
        out.append(Evidence(source=e["source"], section=e.get("section")))
    return tuple(out)


def _bounds(d: Mapping[str, Any]) -> dict[str, Decimal]:
    return {op: Decimal(str(d[op])) for op in ("gt", "gte", "lt", "lte") if op in d}


def _check_bounds(doc: _Doc, at: DocPath, bounds: Mapping[str, Decimal]) -> None:
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
    doc: _Doc,
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


def _load_validity(root: Path, valuesets: set[str], sources: set[str]) -> Validity | None:
    """``validity.yaml``: plausible ranges and validity windows (``None`` when the file is absent)."""
    path = root / VALIDITY_FILE
    if not path.is_file():
        return None
    doc = _Doc(path, root)
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
                _suggest(o["in"], valuesets),
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
                _suggest(fact, _RANGED_FACTS),
                code=checks.VALIDITY,
            )
        numbers = [name for name, kind in FACT_TYPES[fact].items() if kind == "number"]
        if (fact, field) in _TIMED_FIELDS and "plausible" not in f:
            numbers.append(field)  # a window only (patient.pregnant)
        if field not in numbers:
            raise doc.error(
                (*at, "field"),
                f"{fact} facts have no number field {field!r}",
                _suggest(field, numbers),
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
                    _suggest(p[key], valuesets),
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


#: The register of clinical-reference facts, beside the manifest.
FACTS_FILE = "reference-facts.yaml"


def _load_facts(root: Path, manifest: _Manifest) -> tuple[tuple[Fact, ...], tuple[str, ...]]:
    """``reference-facts.yaml``: the facts of the clinical reference (empty when the file is absent).

    Each fact's routes and jurisdictions are the manifest's; each manifest concept is a fact.
    """
    path = root / FACTS_FILE
    if not path.is_file():
        return (), ()
    doc = _Doc(path, root)
    doc.validate("reference-facts")
    known = {j.id for j in manifest.jurisdictions}

    def scope(at: DocPath, routes: list[str], places: list[str]) -> None:
        for i, route in enumerate(routes):
            if route not in manifest.routes:
                raise doc.error(
                    (*at, "routes", i),
                    f"unknown route {route!r}",
                    _suggest(route, manifest.routes),
                    code=checks.FACTS,
                )
        for i, j in enumerate(places):
            if j != ANY_JURISDICTION and j not in known:
                raise doc.error(
                    (*at, "jurisdictions", i),
                    f"unknown jurisdiction {j!r}",
                    _suggest(j, known | {ANY_JURISDICTION}),
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
                _suggest(concept.id, facts),
                code=checks.FACTS,
            )
    notes = tuple(" ".join(n.split()) for n in doc.data.get("notes", []))
    return tuple(facts.values()), notes


class _Context:
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


def _rule(doc: _Doc, at: DocPath, d: Mapping[str, Any], ctx: _Context) -> Rule:
    for index, route in enumerate(d["routes"]):
        if route not in ctx.routes:
            raise doc.error(
                (*at, "routes", index),
                f"unknown route {route!r}",
                _suggest(route, ctx.routes),
                code=checks.UNKNOWN_SCOPE,
            )
    for index, j in enumerate(d["jurisdictions"]):
        if j != ANY_JURISDICTION and j not in ctx.jurisdictions:
            known = ctx.jurisdictions | {ANY_JURISDICTION}
            raise doc.error(
                (*at, "jurisdictions", index),
                f"unknown jurisdiction {j!r}",
                _suggest(j, known),
                code=checks.UNKNOWN_SCOPE,
            )
    if ANY_JURISDICTION in d["jurisdictions"] and len(d["jurisdictions"]) > 1:
        raise doc.error(
            (*at, "jurisdictions"), f"{ANY_JURISDICTION!r} stands alone", code=checks.UNKNOWN_SCOPE
        )
    severities = dict(ctx.status.severities)
    if d["severity"] not in severities:
        raise doc.error(
            (*at, "severity"),
            f"unknown severity {d['severity']!r}",
            _suggest(d["severity"], severities),
            code=checks.UNKNOWN_SEVERITY,
        )
    if d["confidence"] == UNCONFIRMED and severities[d["severity"]] in ctx.status.blocking:
        raise doc.error(
            (*at, "severity"),
            f"an M-confidence (unconfirmed) rule is advisory only and cannot have severity "
            f"{d['severity']!r}, which leads to status {severities[d['severity']]!r}",
            code=checks.UNCONFIRMED_BLOCKS,
        )
    evidence = []
    for index, e in enumerate(d["evidence"]):
        if e["source"] not in ctx.sources:
            raise doc.error(
                (*at, "evidence", index, "source"),
                f"unknown source {e['source']!r}",
                _suggest(e["source"], ctx.sources),
                code=checks.UNKNOWN_SOURCE,
            )
        evidence.append(Evidence(source=e["source"], section=e.get("section")))
    for index, concept_id in enumerate(d.get("concepts", ())):
        # A manifest concept (which programs must assess) or any fact of the register.
        declared = ctx.concepts.get(concept_id) or ctx.facts.get(concept_id)
        if declared is None:
            raise doc.error(
                (*at, "concepts", index),
                f"unknown concept {concept_id!r}: neither the manifest's concepts nor "
                f"{FACTS_FILE} declares it",
                _suggest(concept_id, {*ctx.concepts, *ctx.facts}),
                code=checks.UNKNOWN_CONCEPT,
            )
        if not set(d["routes"]) & set(declared.routes):
            raise doc.error(
                (*at, "concepts", index),
                f"concept {concept_id} is declared for {', '.join(declared.routes) or 'no route'}, "
                f"and the rule applies to none of them",
                code=checks.UNKNOWN_CONCEPT,
            )
    when = _ConditionParser(doc, ctx).parse(d["when"], (*at, "when"), {})[0]
    then = d["then"]
    finding = None
    if "finding" in then:
        f = then["finding"]
        finding = FindingSpec(
            message=" ".join(f["message"].split()),
            management=" ".join(f["management"].split()) if f.get("management") else None,
            missing=f.get("missing"),
            timing=f.get("timing"),
        )
    category = d["category"]
    if category == DERIVATION and finding is not None:
        raise doc.error(
            (*at, "then", "finding"),
            "a derivation rule only derives flags; it has no finding",
            code=checks.CONSEQUENCE,
        )
    if category != DERIVATION and finding is None:
        raise doc.error((*at, "then"), f"a {category} rule needs then.finding", code=checks.CONSEQUENCE)
    if category == DATA_GAP and (finding is None or not finding.missing):
        raise doc.error(
            (*at, "then"), "a data-gap rule needs then.finding.missing (the datum)", code=checks.CONSEQUENCE
        )
    raw_flags = then.get("flag", [])
    flags = (raw_flags,) if isinstance(raw_flags, str) else tuple(raw_flags)
    if category == DERIVATION and not flags:
        raise doc.error((*at, "then"), "a derivation rule needs then.flag", code=checks.CONSEQUENCE)
    dose = _dose(doc, (*at, "then", "dose"), then["dose"]) if "dose" in then else None
    if dose is not None and category != DOSING:
        raise doc.error((*at, "then", "dose"), "only dosing rules compute a dose", code=checks.CONSEQUENCE)
    rule = Rule(
        id=d["id"],
        title=d["title"],
        category=category,
        severity=d["severity"],
        routes=tuple(d["routes"]),
        jurisdictions=tuple(d["jurisdictions"]),
        when=when,
        confidence=d["confidence"],
        evidence=tuple(evidence),
        rationale=" ".join(d["rationale"].split()),
        finding=finding,
        flags=tuple(sorted(set(flags))),
        dose=dose,
        concepts=tuple(sorted(d.get("concepts", ()))),
        group=d.get("group"),
        file=doc.name,
        line=doc.line(at),
    )
    plan.alternatives(rule)  # refuses conditions the engines cannot run
    if rule.group is not None:
        _check_group_member(doc, at, rule, ctx)
    return rule


def _check_group_member(doc: _Doc, at: DocPath, rule: Rule, ctx: _Context) -> None:
    """A grouped rule is one every patient on its routes gets: never patient-specific, never blocking."""
    if rule.group not in ctx.groups:
        raise doc.error(
            (*at, "group"),
            f"unknown group {rule.group!r}: the manifest's groups do not declare it",
            _suggest(str(rule.group), ctx.groups),
            code=checks.UNKNOWN_GROUP,
        )
    if rule.category in (DATA_GAP, DERIVATION):
        raise doc.error(
            (*at, "group"),
            f"a {rule.category} rule cannot be grouped: missing data and derived flags show on their own",
            code=checks.GROUP_MEMBER,
        )
    level = ctx.status.status_of(rule.severity)
    if level is not None and level in ctx.status.blocking:
        raise doc.error(
            (*at, "group"),
            f"a rule leading to status {level!r} cannot be grouped: it must show on its own",
            code=checks.GROUP_MEMBER,
        )
    read = _patient_reads(rule.when)
    if read - CONTEXT_FIELDS:
        raise doc.error(
            (*at, "group"),
            f"{rule.id} reads {', '.join(sorted(read - CONTEXT_FIELDS))}: a group holds only rules that fire "
            f"for every patient on the route (a condition on {', '.join(sorted(CONTEXT_FIELDS))} at most), "
            f"never a patient-specific finding",
            code=checks.GROUP_MEMBER,
        )


def _patient_reads(condition: Condition) -> set[str]:
    """What a condition reads of the record: fact types other than the patient, and patient fields."""
    if isinstance(condition, Pattern):
        if condition.fact != "patient":
            return {f"{condition.fact} facts"}
        return {test.field for test in condition.tests}
    if isinstance(condition, Not):
        return _patient_reads(condition.item)
    return set().union(*(_patient_reads(item) for item in condition.items))


def _dose(doc: _Doc, at: DocPath, d: Mapping[str, Any]) -> DoseSpec:
    name = d["function"]
    if name not in FUNCTIONS:
        raise doc.error(
            (*at, "function"),
            f"unknown dose function {name!r}",
            _suggest(name, set(FUNCTIONS)),
            code=checks.DOSE_SPEC,
        )
    params = d.get("params", {})
    spec = PARAMETERS[name]
    for key, value in params.items():
        if key not in spec:
            raise doc.error(
                (*at, "params", key),
                f"unknown parameter {key!r} of {name}",
                _suggest(key, set(spec)),
                code=checks.DOSE_SPEC,
            )
        allowed = spec[key][1]
        if allowed == "number" and (isinstance(value, bool) or not isinstance(value, int | Decimal)):
            raise doc.error((*at, "params", key), f"{key} must be a number", code=checks.DOSE_SPEC)
        if allowed == "text" and not isinstance(value, str):
            raise doc.error((*at, "params", key), f"{key} must be text", code=checks.DOSE_SPEC)
        if isinstance(allowed, tuple) and value not in allowed:
            raise doc.error(
                (*at, "params", key), f"{key} must be one of {', '.join(allowed)}", code=checks.DOSE_SPEC
            )
    for key, (required, _) in spec.items():
        if required and key not in params:
            raise doc.error((*at, "params"), f"{name} needs parameter {key!r}", code=checks.DOSE_SPEC)
    return DoseSpec(function=name, label=d["label"], params=tuple(sorted(params.items())))


#: The aliases visible at a point of a condition, with the fact type each names.
Scope = dict[str, str]


class _ConditionParser:
    """Turns a ``when`` tree into IR, checking names and the scope of references."""

    def __init__(self, doc: _Doc, ctx: _Context) -> None:
        self.doc = doc
        self.ctx = ctx

    def parse(self, node: Any, at: DocPath, scope: Scope) -> tuple[Condition, Scope]:
        """Return the condition and the aliases it makes visible to later items."""
        if isinstance(node, list):
            return self._all(node, at, scope)
        key = next(iter(node))
        if key == "all":
            return self._all(node["all"], (*at, "all"), scope)
        if key == "any":
            items = tuple(
                self.parse(item, (*at, "any", i), dict(scope))[0] for i, item in enumerate(node["any"])
            )
            return AnyOf(items), {}
        if key == "not":
            inner, _ = self.parse(node["not"], (*at, "not"), {})
            return Not(inner), {}
        if key == FLAG and isinstance(node[key], str):
            return Pattern(fact=FLAG, tests=(Test("name", "eq", node[key]),)), {}
        return self._pattern(key, node[key] or {}, (*at, key), scope)

    def _all(self, nodes: list[Any], at: DocPath, scope: Scope) -> tuple[Condition, Scope]:
        visible = dict(scope)
        items = []
        for index, item in enumerate(nodes):
            condition, defined = self.parse(item, (*at, index), visible)
            items.append(condition)
            visible |= defined
        defined_here = {alias: fact for alias, fact in visible.items() if alias not in scope}
        if len(items) == 1:
            return items[0], defined_here
        return All(tuple(items)), defined_here

    def _pattern(
        self, fact: str, tests: Mapping[str, Any], at: DocPath, scope: Scope
    ) -> tuple[Condition, Scope]:
        vocabulary = self.ctx.vocabulary
        if fact not in vocabulary or fact == FLAG:
            known = set(vocabulary) - {FLAG}
            raise self.doc.error(
                at, f"unknown fact type {fact!r}", _suggest(fact, known), code=checks.UNKNOWN_FACT_TYPE
            )
        fields = vocabulary[fact]
        alias = tests.get("as")
        if alias is not None and alias in scope:
            raise self.doc.error(
                (*at, "as"), f"alias {alias!r} is already used in this condition", code=checks.BAD_REFERENCE
            )
        parsed: list[Test] = []
        for name, value in tests.items():
            where = (*at, name)
            if name == "as":
                continue
            if name == "in":
                if "vs" not in fields:
                    raise self.doc.error(
                        where, f"{fact} facts have no codes to test with 'in'", code=checks.UNKNOWN_FIELD
                    )
                ids = (value,) if isinstance(value, str) else tuple(value)
                for vs in ids:
                    if vs not in self.ctx.valuesets:
                        raise self.doc.error(
                            where,
                            f"unknown value set {vs!r}",
                            _suggest(vs, self.ctx.valuesets),
                            code=checks.UNKNOWN_VALUESET,
                        )
                parsed.append(Test("vs", "member", tuple(sorted(ids))))
                continue
            if name not in fields or fields[name] == "codes":
                usable = {f for f, kind in fields.items() if kind != "codes"}
                raise self.doc.error(
                    where,
                    f"{fact} facts have no field {name!r}",
                    _suggest(name, usable),
                    code=checks.UNKNOWN_FIELD,
                )
            kind = fields[name]
            ops = value if isinstance(value, dict) else {"eq": value}
            for op, operand in ops.items():
                if op not in _OPS_BY_KIND[kind]:
                    raise self.doc.error(
                        (*where, op),
                        f"{op!r} does not apply to {kind} field {name!r}",
                        code=checks.TYPE_MISMATCH,
                    )
                operand_value = self._operand(operand, kind, op, (*where, op), scope)
                parsed.append(Test(name, cast(Op, op), operand_value))
        return Pattern(fact=fact, tests=tuple(parsed), alias=alias), ({alias: fact} if alias else {})

    def _operand(
        self, operand: Any, kind: str, op: str, at: DocPath, scope: Scope
    ) -> Scalar | tuple[Scalar, ...] | Ref:
        if op == "present":
            return bool(operand)
        if isinstance(operand, dict):
            alias, _, field = operand["ref"].partition(".")
            if alias not in scope:
                raise self.doc.error(
                    at,
                    f"reference to {alias!r}, which no earlier pattern of this 'all' defines with 'as'",
                    code=checks.BAD_REFERENCE,
                )
            target_kind = self.ctx.vocabulary[scope[alias]].get(field)
            if target_kind != kind:
                raise self.doc.error(
                    at,
                    f"{scope[alias]} facts have no {kind} field {field!r} to compare with",
                    code=checks.BAD_REFERENCE,
                )
            return Ref(alias, field)
        many = op in ("in", "not_in")
        values = tuple(operand) if many else (operand,)
        for value in values:
            _check_kind(value, kind, lambda reason: self.doc.error(at, reason, code=checks.TYPE_MISMATCH))
        return values if many else values[0]


def _check_kind(value: Any, kind: str, fail: Callable[[str], RulesetError]) -> None:
    ok = {
        "number": not isinstance(value, bool) and isinstance(value, int | Decimal),
        "text": isinstance(value, str),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise fail(f"expected a {kind}, got {value!r}")


def _flag_problems(ruleset: RuleSet) -> list[RulesetError]:
    """A problem for each flag a rule reads that no rule derives."""
    produced = {flag for rule in ruleset.rules for flag in rule.flags}
    found = []
    for rule in ruleset.rules:
        positive, negative = plan.flags_read(rule)
        for flag in sorted((positive | negative) - produced):
            found.append(
                RulesetError(
                    f"rule {rule.id} reads flag {flag!r}, which no rule derives",
                    file=rule.file,
                    line=rule.line,
                    suggestion=_suggest(flag, produced),
                    code=checks.UNKNOWN_FLAG,
                )
            )
    return found
