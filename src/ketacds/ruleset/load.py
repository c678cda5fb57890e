"""Load a ruleset directory (YAML + JSON Schema) into the intermediate form.

A ruleset directory holds ``manifest.yaml`` (name, version, routes, jurisdictions,
sources register, status table, and the list of rule files), the rule files, and
``valuesets/*.yaml``. Every problem is a :class:`~ketacds.errors.RulesetError`
that names the file and line, with a did-you-mean suggestion where a name is close.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonschema

from ketacds._yaml import Path as DocPath
from ketacds._yaml import YamlProblem, load_yaml
from ketacds.dosing.functions import FUNCTIONS, PARAMETERS
from ketacds.errors import RulesetError
from ketacds.models.facts import FACT_TYPES, FLAG, FieldKind
from ketacds.models.inputs import ROUTES, canonical_system
from ketacds.ruleset import plan
from ketacds.ruleset.ir import (
    All,
    AnyOf,
    Code,
    Condition,
    DoseSpec,
    Evidence,
    FindingSpec,
    Jurisdiction,
    Not,
    Op,
    Pattern,
    Ref,
    Rule,
    RuleSet,
    Scalar,
    Source,
    StatusLevel,
    StatusTable,
    Table,
    TableEntry,
    Test,
    ValueSet,
)

__all__ = ["ANY_JURISDICTION", "bundled_rules_dir", "fact_vocabulary", "load_ruleset", "schema"]

#: Written in a rule's ``jurisdictions`` to mean "wherever the engine is used".
ANY_JURISDICTION = "any"

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


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


def _suggest(name: str, known: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


class _Doc:
    """One YAML file with its line map, to raise errors at the right line."""

    def __init__(self, path: Path, root: Path) -> None:
        self.name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            self.data, self.lines = load_yaml(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise RulesetError(f"cannot read: {error.strerror}", file=self.name) from None
        except YamlProblem as problem:
            raise RulesetError(problem.reason, file=self.name, line=problem.line) from None

    def line(self, path: DocPath) -> int | None:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: DocPath, reason: str, suggestion: str | None = None) -> RulesetError:
        return RulesetError(reason, file=self.name, line=self.line(path), suggestion=suggestion)

    def validate(self, schema_name: str) -> None:
        validator = _validator(schema_name)
        errors = sorted(validator.iter_errors(self.data), key=lambda e: (len(e.path), list(map(str, e.path))))
        if errors:
            best = jsonschema.exceptions.best_match(errors)
            where = ".".join(map(str, best.absolute_path)) or "(top level)"
            raise self.error(tuple(best.absolute_path), f"{where}: {best.message}")


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
    ruleset = _load(root)
    if key:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = ruleset
    return ruleset


def _load(root: Path) -> RuleSet:
    manifest_path = root / "manifest.yaml"
    if not manifest_path.is_file():
        raise RulesetError("no manifest.yaml here", file=str(root))
    manifest = _Doc(manifest_path, root)
    manifest.validate("manifest")
    m = manifest.data

    routes = tuple(r["id"] for r in m["routes"])
    if set(routes) != set(ROUTES):
        raise manifest.error(("routes",), f"routes must be exactly {', '.join(ROUTES)}")
    jurisdictions = tuple(
        Jurisdiction(id=j["id"], title=j["title"], parent=j.get("parent")) for j in m["jurisdictions"]
    )
    known_jurisdictions = {j.id for j in jurisdictions}
    for index, j in enumerate(jurisdictions):
        if j.parent is not None and j.parent not in known_jurisdictions:
            raise manifest.error(("jurisdictions", index, "parent"), f"unknown jurisdiction {j.parent!r}")
    sources = tuple(
        Source(id=s["id"], title=s["title"], confidence_note=s.get("confidence_note")) for s in m["sources"]
    )
    status = _status_table(manifest)

    valuesets = _load_valuesets(root)
    tables = _load_tables(root, {v.id for v in valuesets})
    context = _Context(
        vocabulary=fact_vocabulary(tables),
        routes=set(routes),
        jurisdictions=known_jurisdictions,
        sources={s.id for s in sources},
        valuesets={v.id for v in valuesets},
        status=status,
    )
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for index, file_name in enumerate(m["files"]):
        path = root / file_name
        if not path.is_file():
            raise manifest.error(("files", index), f"rule file {file_name} does not exist")
        doc = _Doc(path, root)
        doc.validate("rules")
        for position, data in enumerate(doc.data["rules"]):
            rule = _rule(doc, ("rules", position), data, context)
            if rule.id in seen:
                first = seen[rule.id]
                raise doc.error(
                    ("rules", position, "id"),
                    f"duplicate rule id {rule.id} (first defined at {first.file}:{first.line})",
                )
            seen[rule.id] = rule
            rules.append(rule)
    ruleset = RuleSet(
        name=m["name"],
        version=m["version"],
        description=" ".join(m["description"].split()),
        routes=routes,
        jurisdictions=jurisdictions,
        sources=sources,
        status=status,
        rules=tuple(sorted(rules, key=lambda r: r.id)),
        valuesets=valuesets,
        tables=tables,
    )
    _check_flags(ruleset)
    plan.stratify(ruleset.rules)
    return ruleset


def _status_table(manifest: _Doc) -> StatusTable:
    data = manifest.data["status"]
    levels = tuple(
        StatusLevel(name=x["name"], meaning=" ".join(x["meaning"].split())) for x in data["levels"]
    )
    names = [level.name for level in levels]
    if len(set(names)) != len(names):
        raise manifest.error(("status", "levels"), "status levels must be unique")
    for key in ("default",):
        if data[key] not in names:
            raise manifest.error(("status", key), f"unknown status {data[key]!r}", _suggest(data[key], names))
    for index, name in enumerate(data["blocking"]):
        if name not in names:
            raise manifest.error(
                ("status", "blocking", index), f"unknown status {name!r}", _suggest(name, names)
            )
    for severity, name in data["severities"].items():
        if name not in names:
            raise manifest.error(
                ("status", "severities", severity), f"unknown status {name!r}", _suggest(name, names)
            )
    return StatusTable(
        levels=levels,
        severities=tuple(sorted(data["severities"].items())),
        default=data["default"],
        blocking=tuple(data["blocking"]),
    )


def _load_valuesets(root: Path) -> tuple[ValueSet, ...]:
    folder = root / "valuesets"
    result = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        doc = _Doc(path, root)
        doc.validate("valueset")
        d = doc.data
        if d["id"] != path.stem:
            raise doc.error(("id",), f"value set id {d['id']!r} must match its file name {path.stem!r}")

        def codes(key: str, doc: _Doc = doc, d: dict[str, Any] = d) -> tuple[Code, ...]:
            out = []
            for index, c in enumerate(d.get(key, [])):
                try:
                    system = canonical_system(c["system"])
                except ValueError as error:
                    raise doc.error((key, index, "system"), str(error)) from None
                out.append(
                    Code(system=system, code=c["code"], display=c.get("display"), source=c.get("source"))
                )
            return tuple(out)

        result.append(
            ValueSet(
                id=d["id"],
                title=d["title"],
                description=" ".join(d["description"].split()) if d.get("description") else None,
                source=" ".join(d["source"].split()),
                codes=codes("codes"),
                prefixes=codes("prefixes"),
                names=tuple(sorted({n.strip().lower() for n in d.get("names", [])})),
                file=doc.name,
            )
        )
    return tuple(result)


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
            raise doc.error(("id",), f"table id {d['id']!r} must match its file name {path.stem!r}")
        fields = FACT_TYPES.get(d["fact"])
        if fields is None or "vs" not in fields:
            raise doc.error(("fact",), f"tables apply to coded facts, not {d['fact']!r}")
        if fields.get(d["input"]) != "number":
            raise doc.error(("input",), f"{d['fact']} facts have no number field {d['input']!r}")
        for target in ((d["fact"], d["output"]), ("patient", d.get("total"))):
            if target[1] is None:
                continue
            if target[1] in FACT_TYPES[target[0]] or target in outputs:
                raise doc.error(("output",), f"{target[0]} facts already have a field {target[1]!r}")
            outputs.add((target[0], target[1]))
        entries = []
        for index, entry in enumerate(d["entries"]):
            if entry["in"] not in valuesets:
                raise doc.error(
                    ("entries", index, "in"),
                    f"unknown value set {entry['in']!r}",
                    _suggest(entry["in"], valuesets),
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
                operation=d.get("operation", "multiply"),
                scale=Decimal(d.get("scale", 1)),
                entries=tuple(entries),
                file=doc.name,
            )
        )
    return tuple(result)


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
    ) -> None:
        self.vocabulary = vocabulary
        self.routes = routes
        self.jurisdictions = jurisdictions
        self.sources = sources
        self.valuesets = valuesets
        self.status = status


def _rule(doc: _Doc, at: DocPath, d: Mapping[str, Any], ctx: _Context) -> Rule:
    for index, route in enumerate(d["routes"]):
        if route not in ctx.routes:
            raise doc.error((*at, "routes", index), f"unknown route {route!r}", _suggest(route, ctx.routes))
    for index, j in enumerate(d["jurisdictions"]):
        if j != ANY_JURISDICTION and j not in ctx.jurisdictions:
            known = ctx.jurisdictions | {ANY_JURISDICTION}
            raise doc.error((*at, "jurisdictions", index), f"unknown jurisdiction {j!r}", _suggest(j, known))
    if ANY_JURISDICTION in d["jurisdictions"] and len(d["jurisdictions"]) > 1:
        raise doc.error((*at, "jurisdictions"), f"{ANY_JURISDICTION!r} stands alone")
    severities = dict(ctx.status.severities)
    if d["severity"] not in severities:
        raise doc.error(
            (*at, "severity"), f"unknown severity {d['severity']!r}", _suggest(d["severity"], severities)
        )
    if d["confidence"] == "M" and severities[d["severity"]] in ctx.status.blocking:
        raise doc.error(
            (*at, "severity"),
            f"an M-confidence (unconfirmed) rule is advisory only and cannot have severity "
            f"{d['severity']!r}, which leads to status {severities[d['severity']]!r}",
        )
    evidence = []
    for index, e in enumerate(d["evidence"]):
        if e["source"] not in ctx.sources:
            raise doc.error(
                (*at, "evidence", index, "source"),
                f"unknown source {e['source']!r}",
                _suggest(e["source"], ctx.sources),
            )
        evidence.append(Evidence(source=e["source"], section=e.get("section")))
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
    if category == "derivation" and finding is not None:
        raise doc.error((*at, "then", "finding"), "a derivation rule only derives flags; it has no finding")
    if category != "derivation" and finding is None:
        raise doc.error((*at, "then"), f"a {category} rule needs then.finding")
    if category == "data-gap" and (finding is None or not finding.missing):
        raise doc.error((*at, "then"), "a data-gap rule needs then.finding.missing (the datum)")
    raw_flags = then.get("flag", [])
    flags = (raw_flags,) if isinstance(raw_flags, str) else tuple(raw_flags)
    if category == "derivation" and not flags:
        raise doc.error((*at, "then"), "a derivation rule needs then.flag")
    dose = _dose(doc, (*at, "then", "dose"), then["dose"]) if "dose" in then else None
    if dose is not None and category != "dosing":
        raise doc.error((*at, "then", "dose"), "only dosing rules compute a dose")
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
        file=doc.name,
        line=doc.line(at),
    )
    plan.alternatives(rule)  # refuses conditions the engines cannot run
    return rule


def _dose(doc: _Doc, at: DocPath, d: Mapping[str, Any]) -> DoseSpec:
    name = d["function"]
    if name not in FUNCTIONS:
        raise doc.error((*at, "function"), f"unknown dose function {name!r}", _suggest(name, set(FUNCTIONS)))
    params = d.get("params", {})
    spec = PARAMETERS[name]
    for key, value in params.items():
        if key not in spec:
            raise doc.error(
                (*at, "params", key), f"unknown parameter {key!r} of {name}", _suggest(key, set(spec))
            )
        allowed = spec[key][1]
        if allowed == "number" and (isinstance(value, bool) or not isinstance(value, int | Decimal)):
            raise doc.error((*at, "params", key), f"{key} must be a number")
        if allowed == "text" and not isinstance(value, str):
            raise doc.error((*at, "params", key), f"{key} must be text")
        if isinstance(allowed, tuple) and value not in allowed:
            raise doc.error((*at, "params", key), f"{key} must be one of {', '.join(allowed)}")
    for key, (required, _) in spec.items():
        if required and key not in params:
            raise doc.error((*at, "params"), f"{name} needs parameter {key!r}")
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
            raise self.doc.error(at, f"unknown fact type {fact!r}", _suggest(fact, known))
        fields = vocabulary[fact]
        alias = tests.get("as")
        if alias is not None and alias in scope:
            raise self.doc.error((*at, "as"), f"alias {alias!r} is already used in this condition")
        parsed: list[Test] = []
        for name, value in tests.items():
            where = (*at, name)
            if name == "as":
                continue
            if name == "in":
                if "vs" not in fields:
                    raise self.doc.error(where, f"{fact} facts have no codes to test with 'in'")
                ids = (value,) if isinstance(value, str) else tuple(value)
                for vs in ids:
                    if vs not in self.ctx.valuesets:
                        raise self.doc.error(
                            where, f"unknown value set {vs!r}", _suggest(vs, self.ctx.valuesets)
                        )
                parsed.append(Test("vs", "member", tuple(sorted(ids))))
                continue
            if name not in fields or fields[name] == "codes":
                usable = {f for f, kind in fields.items() if kind != "codes"}
                raise self.doc.error(where, f"{fact} facts have no field {name!r}", _suggest(name, usable))
            kind = fields[name]
            ops = value if isinstance(value, dict) else {"eq": value}
            for op, operand in ops.items():
                if op not in _OPS_BY_KIND[kind]:
                    raise self.doc.error((*where, op), f"{op!r} does not apply to {kind} field {name!r}")
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
                    at, f"reference to {alias!r}, which no earlier pattern of this 'all' defines with 'as'"
                )
            target_kind = self.ctx.vocabulary[scope[alias]].get(field)
            if target_kind != kind:
                raise self.doc.error(
                    at, f"{scope[alias]} facts have no {kind} field {field!r} to compare with"
                )
            return Ref(alias, field)
        many = op in ("in", "not_in")
        values = tuple(operand) if many else (operand,)
        for value in values:
            _check_kind(value, kind, lambda reason: self.doc.error(at, reason))
        return values if many else values[0]


def _check_kind(value: Any, kind: str, fail: Callable[[str], RulesetError]) -> None:
    ok = {
        "number": not isinstance(value, bool) and isinstance(value, int | Decimal),
        "text": isinstance(value, str),
        "bool": isinstance(value, bool),
    }[kind]
    if not ok:
        raise fail(f"expected a {kind}, got {value!r}")


def _check_flags(ruleset: RuleSet) -> None:
    produced = {flag for rule in ruleset.rules for flag in rule.flags}
    for rule in ruleset.rules:
        positive, negative = plan.flags_read(rule)
        for flag in sorted(positive | negative):
            if flag not in produced:
                raise RulesetError(
                    f"rule {rule.id} reads flag {flag!r}, which no rule derives",
                    file=rule.file,
                    line=rule.line,
                    suggestion=_suggest(flag, produced),
                )
