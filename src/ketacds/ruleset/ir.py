"""The engine-neutral intermediate form of a ruleset (frozen attrs).

YAML files are loaded into these classes (``ruleset/load.py``); engines run them
(``engine/backends/durable/`` compiles them onto durable_rules, and
``engine/reference.py`` evaluates them directly). Nothing here depends on an engine.

This module holds the rules (conditions, findings, doses), :class:`RuleSet` and the
canonical form; the declarations a manifest makes beside the rules (value sets, tables,
validity, sources, jurisdictions, concepts, facts, groups, refusals, the status table)
live in ``ruleset/declarations.py`` and are re-exported here, so ``from
ketacds.ruleset.ir import ValueSet`` keeps working.

The canonical form (:func:`canonical`) is plain JSON data with sorted keys and
without source locations; its sha256 is the ruleset's digest, so the same clinical
content always has the same digest, whatever the file layout or comments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeAlias

import attrs

from ketacds.errors import UnknownRuleError
from ketacds.jsoncodec import Codec, canonical_dumps
from ketacds.ruleset.declarations import (
    Code,
    CodeRange,
    Concept,
    Evidence,
    Fact,
    FactGap,
    Follows,
    Group,
    Ingredient,
    Jurisdiction,
    Refusal,
    Source,
    StatusLevel,
    StatusTable,
    Table,
    TableEntry,
    Validity,
    ValidityPair,
    ValidityRange,
    ValueSet,
    location_field,
)
from ketacds.vocabulary import Confidence
from ketacds.yamldoc import close_matches

__all__ = [
    "All",
    "AnyOf",
    "Code",
    "CodeRange",
    "Concept",
    "Condition",
    "DoseSpec",
    "Evidence",
    "Fact",
    "FactGap",
    "FindingSpec",
    "Follows",
    "Group",
    "Ingredient",
    "Jurisdiction",
    "Not",
    "Op",
    "Pattern",
    "Ref",
    "Refusal",
    "Rule",
    "RuleSet",
    "Scalar",
    "Source",
    "StatusLevel",
    "StatusTable",
    "Table",
    "TableEntry",
    "Test",
    "Validity",
    "ValidityPair",
    "ValidityRange",
    "ValueSet",
    "canonical",
    "canonical_json",
    "from_canonical",
    "patterns",
    "to_data",
]

Scalar: TypeAlias = str | int | Decimal | bool
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present", "member"]


@attrs.frozen
class Ref:
    """The value of ``field`` in the fact matched by the pattern named ``alias``."""

    alias: str
    field: str


@attrs.frozen
class Test:
    """One test on one field of a fact.

    ``member`` tests value-set membership: the fact's ``field`` (a set of value-set
    ids) shares at least one id with ``value``. ``present`` tests that the field is
    known (``value`` true) or unknown (``value`` false). Every other operator is
    false when the field is unknown (``not_in`` too: unknown is not "none of these").
    """

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...] | Ref


@attrs.frozen
class Pattern:
    """Matches one fact of type ``fact`` whose fields pass every test."""

    fact: str
    tests: tuple[Test, ...] = ()
    alias: str | None = None


@attrs.frozen
class All:
    """Every item holds (jointly, for one choice of facts)."""

    items: tuple[Condition, ...]


@attrs.frozen
class AnyOf:
    """At least one item holds."""

    items: tuple[Condition, ...]


@attrs.frozen
class Not:
    """No choice of facts satisfies ``item`` (negation as absence)."""

    item: Condition


Condition: TypeAlias = Pattern | All | AnyOf | Not


def patterns(condition: Condition, *, negated: bool = True) -> Iterator[Pattern]:
    """Every pattern of ``condition``, in order; with ``negated=False``, none under a ``not``."""
    if isinstance(condition, Pattern):
        yield condition
    elif isinstance(condition, Not):
        if negated:
            yield from patterns(condition.item)
    else:
        for item in condition.items:
            yield from patterns(item, negated=negated)


@attrs.frozen
class FindingSpec:
    """What a rule says when it fires.

    ``missing`` names the datum a data-gap finding is about (``weight``, ...).
    ``timing`` says when a monitoring item applies.
    """

    message: str
    management: str | None = None
    missing: str | None = None
    timing: str | None = None


@attrs.frozen
class DoseSpec:
    """A dose option computed by the named pure function in ``ketacds.dosing``."""

    function: str
    label: str
    params: tuple[tuple[str, Scalar], ...] = ()


@attrs.frozen
class Rule:
    """One rule: when its condition holds, it reports a finding and/or derives flags."""

    id: str
    title: str
    category: str
    severity: str
    routes: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    when: Condition
    confidence: Confidence
    evidence: tuple[Evidence, ...]
    rationale: str
    finding: FindingSpec | None = None
    flags: tuple[str, ...] = ()
    dose: DoseSpec | None = None
    #: The reference facts this rule encodes (ids of the register or the manifest's concepts).
    concepts: tuple[str, ...] = ()
    #: The presentation group its finding is shown in (an id of the manifest's ``groups``).
    group: str | None = None
    file: str | None = location_field()
    line: int | None = location_field()


@attrs.frozen
class RuleSet:
    """A complete, validated ruleset: what the digest identifies."""

    name: str
    version: str
    description: str
    routes: tuple[str, ...]
    jurisdictions: tuple[Jurisdiction, ...]
    sources: tuple[Source, ...]
    status: StatusTable
    rules: tuple[Rule, ...]
    valuesets: tuple[ValueSet, ...]
    tables: tuple[Table, ...] = ()
    #: The safety concepts each program of a route must assess (``ruleset/scope.py``).
    concepts: tuple[Concept, ...] = ()
    #: The programs (route, jurisdiction) the engine refuses, with the reason.
    refusals: tuple[Refusal, ...] = ()
    #: Presentation groups rules may name (``group:``), in the order reports show them.
    groups: tuple[Group, ...] = ()
    #: Plausible ranges and validity windows (``validity.yaml``); ``None``: none declared.
    validity: Validity | None = None
    #: The register of clinical-reference facts (``reference-facts.yaml``); empty: none.
    facts: tuple[Fact, ...] = ()
    #: What the register says about reference chapters without fact ids.
    fact_notes: tuple[str, ...] = ()
    #: (route, value set of its drug) for the routes that declare one: an order for another
    #: route's drug is refused (``Engine.facts``).
    route_drugs: tuple[tuple[str, str], ...] = ()

    @property
    def digest(self) -> str:
        """The sha256 (hex) of the canonical form (computed once per ruleset object)."""
        return _digest(self)

    def rule(self, rule_id: str) -> Rule:
        """Return the rule with this id.

        Raises:
            UnknownRuleError: there is no such rule (a ``KeyError`` too), naming the
                nearest ids.
        """
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise UnknownRuleError(rule_id, self.name, close_matches(rule_id, (r.id for r in self.rules), 3))

    def jurisdiction_scope(self, jurisdiction: str) -> tuple[str, ...]:
        """Return ``jurisdiction`` and every jurisdiction it lies within, innermost first."""
        parents = {j.id: j.parent for j in self.jurisdictions}
        scope: list[str] = []
        current: str | None = jurisdiction
        while current is not None and current not in scope:
            scope.append(current)
            current = parents.get(current)
        return tuple(scope)

    def follows(self, route: str, jurisdiction: str) -> Follows | None:
        """The label ``jurisdiction`` follows for ``route`` (declared on it or a jurisdiction it lies in)."""
        by_id = {j.id: j for j in self.jurisdictions}
        for place in self.jurisdiction_scope(jurisdiction):
            known = by_id.get(place)
            for follows in known.follows if known is not None else ():
                if follows.route == route:
                    return follows
        return None

    def program_scope(self, route: str, jurisdiction: str) -> tuple[str, ...]:
        """The jurisdictions whose rules apply to ``route`` in ``jurisdiction``, innermost first.

        ``jurisdiction`` and those it lies in, then the label it follows for ``route``
        and those that label lies in (CH esketamine: ``("CH", "EU")``).
        """
        scope = list(self.jurisdiction_scope(jurisdiction))
        follows = self.follows(route, jurisdiction)
        if follows is not None:
            scope += [j for j in self.jurisdiction_scope(follows.label) if j not in scope]
        return tuple(scope)


def _canonical_field(attribute: attrs.Attribute[Any]) -> bool:
    return bool(attribute.metadata.get("canonical", True))


#: The canonical form's JSON (see :mod:`ketacds.jsoncodec`): decimals tagged, so that a
#: test's value 0.5 and "0.5" stay apart; fields in their order, source locations left
#: out; condition nodes name their class under ``node``.
_CODEC = Codec(
    decimals="tagged",
    sequences=list,
    sort_keys=False,
    include=_canonical_field,
    tags=(Pattern, All, AnyOf, Not, Ref),
)


def to_data(value: Any) -> Any:
    """Return plain JSON data for any IR value; condition nodes carry their class in ``node``."""
    return _CODEC.encode(value)


def canonical(ruleset: RuleSet) -> dict[str, Any]:
    """Return the canonical form: plain JSON data, no source locations."""
    data: dict[str, Any] = to_data(ruleset)
    data["format"] = "ketacds-ruleset/1"
    return data


def from_canonical(data: Mapping[str, Any]) -> RuleSet:
    """Rebuild a RuleSet from its canonical form (the inverse of :func:`canonical`).

    Raises:
        ValueError: the data is not the canonical form of a ruleset.
    """
    if data.get("format") != "ketacds-ruleset/1":
        raise ValueError("not a ketacds canonical ruleset (format ketacds-ruleset/1)")
    try:
        ruleset: RuleSet = _CODEC.decode(RuleSet, {k: v for k, v in data.items() if k != "format"})
    except (KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise ValueError(f"not a ketacds canonical ruleset: {error}") from error
    return ruleset


def canonical_json(ruleset: RuleSet) -> str:
    """Return the canonical form as compact JSON with sorted keys (what the digest hashes)."""
    return canonical_dumps(canonical(ruleset))


def _digest(ruleset: RuleSet) -> str:
    # A RuleSet is immutable, so its digest is remembered by identity (the entry keeps the
    # object alive, so its id is never another's): every Engine built on the cached
    # bundled ruleset would otherwise hash the canonical form again (~40 ms).
    entry = _DIGESTS.get(id(ruleset))
    if entry is not None and entry[0] is ruleset:
        return entry[1]
    digest = hashlib.sha256(canonical_json(ruleset).encode("utf-8")).hexdigest()
    if len(_DIGESTS) >= _DIGESTS_KEPT:
        _DIGESTS.clear()
    _DIGESTS[id(ruleset)] = (ruleset, digest)
    return digest


#: Digests remembered (see :func:`_digest`); emptied when full, so memory stays bounded.
_DIGESTS_KEPT = 32
_DIGESTS: dict[int, tuple[RuleSet, str]] = {}
