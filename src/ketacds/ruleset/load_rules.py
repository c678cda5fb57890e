"""The rules of a ruleset: each rule, its condition tree, its dose, checked against the context.

Part of the loader (:mod:`ketacds.ruleset.load`): :func:`load_rule` turns one rule of a
rule file (already checked against its schema) into IR, checking every name against
the :class:`~ketacds.ruleset.load_manifest.Context`; :func:`flag_problems` checks the
flags the loaded rules read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, cast

from ketacds.dosing.functions import FUNCTIONS, PARAMETERS
from ketacds.errors import RulesetError
from ketacds.models.facts import FLAG
from ketacds.ruleset import checks, plan
from ketacds.ruleset.ir import (
    All,
    AnyOf,
    Condition,
    DoseSpec,
    Evidence,
    FindingSpec,
    Not,
    Op,
    Pattern,
    Ref,
    Rule,
    RuleSet,
    Scalar,
    Test,
)
from ketacds.ruleset.load_doc import ANY_JURISDICTION, FACTS_FILE, RulesDoc
from ketacds.ruleset.load_manifest import Context
from ketacds.vocabulary import DATA_GAP, DERIVATION, DOSING, UNCONFIRMED
from ketacds.yamldoc import DocPath, suggest

__all__ = ["CONTEXT_FIELDS", "flag_problems", "load_rule"]

#: The patient-fact fields that describe the treatment context, not the patient: the only
#: fields a grouped rule's condition may test (a group holds what every patient on the
#: route gets, never a patient-specific finding).
CONTEXT_FIELDS = frozenset({"setting"})

_OPS_BY_KIND: dict[str, set[str]] = {
    "number": {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present"},
    "text": {"eq", "ne", "in", "not_in", "present"},
    "bool": {"eq", "ne", "present"},
}


def load_rule(doc: RulesDoc, at: DocPath, d: Mapping[str, Any], ctx: Context) -> Rule:
    """The rule ``d`` at ``at`` of ``doc`` as IR; every name it uses is checked against ``ctx``."""
    for index, route in enumerate(d["routes"]):
        if route not in ctx.routes:
            raise doc.error(
                (*at, "routes", index),
                f"unknown route {route!r}",
                suggest(route, ctx.routes),
                code=checks.UNKNOWN_SCOPE,
            )
    for index, j in enumerate(d["jurisdictions"]):
        if j != ANY_JURISDICTION and j not in ctx.jurisdictions:
            known = ctx.jurisdictions | {ANY_JURISDICTION}
            raise doc.error(
                (*at, "jurisdictions", index),
                f"unknown jurisdiction {j!r}",
                suggest(j, known),
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
            suggest(d["severity"], severities),
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
                suggest(e["source"], ctx.sources),
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
                suggest(concept_id, {*ctx.concepts, *ctx.facts}),
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


def _check_group_member(doc: RulesDoc, at: DocPath, rule: Rule, ctx: Context) -> None:
    """A grouped rule is one every patient on its routes gets: never patient-specific, never blocking."""
    if rule.group not in ctx.groups:
        raise doc.error(
            (*at, "group"),
            f"unknown group {rule.group!r}: the manifest's groups do not declare it",
            suggest(str(rule.group), ctx.groups),
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


def _dose(doc: RulesDoc, at: DocPath, d: Mapping[str, Any]) -> DoseSpec:
    name = d["function"]
    if name not in FUNCTIONS:
        raise doc.error(
            (*at, "function"),
            f"unknown dose function {name!r}",
            suggest(name, set(FUNCTIONS)),
            code=checks.DOSE_SPEC,
        )
    params = d.get("params", {})
    spec = PARAMETERS[name]
    for key, value in params.items():
        if key not in spec:
            raise doc.error(
                (*at, "params", key),
                f"unknown parameter {key!r} of {name}",
                suggest(key, set(spec)),
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

    def __init__(self, doc: RulesDoc, ctx: Context) -> None:
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
                at, f"unknown fact type {fact!r}", suggest(fact, known), code=checks.UNKNOWN_FACT_TYPE
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
                            suggest(vs, self.ctx.valuesets),
                            code=checks.UNKNOWN_VALUESET,
                        )
                parsed.append(Test("vs", "member", tuple(sorted(ids))))
                continue
            if name not in fields or fields[name] == "codes":
                usable = {f for f, kind in fields.items() if kind != "codes"}
                raise self.doc.error(
                    where,
                    f"{fact} facts have no field {name!r}",
                    suggest(name, usable),
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


def flag_problems(ruleset: RuleSet) -> list[RulesetError]:
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
                    suggestion=suggest(flag, produced),
                    code=checks.UNKNOWN_FLAG,
                )
            )
    return found
