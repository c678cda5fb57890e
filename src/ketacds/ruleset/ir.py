"""The engine-neutral intermediate form of a ruleset (frozen attrs).

YAML files are loaded into these classes (``ruleset/load.py``); engines run them
(``engine/backends/durable/`` compiles them onto durable_rules, and
``engine/reference.py`` evaluates them directly). Nothing here depends on an engine.

The canonical form (:func:`canonical`) is plain JSON data with sorted keys and
without source locations; its sha256 is the ruleset's digest, so the same clinical
content always has the same digest, whatever the file layout or comments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeAlias

import attrs

from ketacds.errors import UnknownRuleError
from ketacds.jsoncodec import Codec, canonical_dumps
from ketacds.vocabulary import Confidence
from ketacds.yamldoc import close_matches

__all__ = [
    "All",
    "AnyOf",
    "Code",
    "Concept",
    "Condition",
    "DoseSpec",
    "Evidence",
    "Fact",
    "FactGap",
    "FindingSpec",
    "Follows",
    "Group",
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
    "to_data",
]

Scalar: TypeAlias = str | int | Decimal | bool
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present", "member"]

# Marks attributes that say where something was written, not what it means;
# they are left out of the canonical form and of equality.
_LOCATION = {"canonical": False}


def _location() -> Any:
    return attrs.field(default=None, eq=False, repr=False, metadata=_LOCATION)


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


@attrs.frozen
class Evidence:
    """A citation: a source id from the register and the section relied on."""

    source: str
    section: str | None = None


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
    file: str | None = _location()
    line: int | None = _location()


@attrs.frozen
class Code:
    """One code of a value set."""

    system: str
    code: str
    display: str | None = None
    source: str | None = None


@attrs.frozen
class CodeRange:
    """A range of codes of a hierarchical system, both ends included: ``I21``–``I22``.

    A code belongs when its first ``len(start)`` characters (dots and case folded) lie
    between ``start`` and ``end``, so ``I21.4`` and ``I2109`` are in ``I21``–``I22``.
    """

    system: str
    start: str
    end: str
    display: str | None = None
    source: str | None = None


@attrs.frozen
class Ingredient:
    """One ingredient of a value set and the other names it goes by (brands, synonyms)."""

    name: str
    also: tuple[str, ...] = ()


@attrs.frozen
class ValueSet:
    """A named set of codes (exact, by prefix or by range in hierarchical systems) and names.

    ``names`` match a typed name exactly (case and space folded) and, for medications,
    substances and allergies, as whole words inside a longer text (``"Diazepam 5 MG Oral
    Tablet [Valium]"``). ``synonyms`` are words that name the concept inside free text:
    an item nobody reads whose text holds one is reported as naming this concept.
    ``ingredients`` group the names of one ingredient (generic and brands), so that two
    names of one drug count once. ``known`` (a fact type: ``medication``, ``condition``,
    ...) marks a list of items of that type ketacds recognises but no rule needs ("known,
    no rule needs it"): read, never reported as unseen.
    """

    id: str
    title: str
    source: str
    codes: tuple[Code, ...] = ()
    prefixes: tuple[Code, ...] = ()
    names: tuple[str, ...] = ()
    description: str | None = None
    file: str | None = _location()
    ranges: tuple[CodeRange, ...] = ()
    synonyms: tuple[str, ...] = ()
    ingredients: tuple[Ingredient, ...] = ()
    known: str | None = None


@attrs.frozen
class TableEntry:
    """One row of a conversion table: the ``value`` for items in ``valueset``."""

    valueset: str
    value: Decimal
    note: str | None = None


@attrs.frozen
class Table:
    """A conversion table, deriving the number field ``output`` on facts of type ``fact``.

    ``output`` = ``input`` × value × ``scale`` (operation ``multiply``) or
    ``input`` ÷ value × ``scale`` (operation ``divide``, e.g. daily dose ÷ the dose
    equivalent to 10 mg diazepam × 10). With ``total``, the sum of ``output`` over the
    active items is also set on the patient fact under that name.
    """

    id: str
    title: str
    source: str
    fact: str
    input: str
    output: str
    entries: tuple[TableEntry, ...]
    operation: Literal["multiply", "divide"] = "multiply"
    scale: Decimal = Decimal(1)
    total: str | None = None
    #: How a derived figure is shown in a fact's label (explanations): a text with
    #: ``{input}`` and ``{output}`` (e.g. "{input} mg/day = {output} mg/day diazepam-equivalent
    #: (Ashton table)"); none: the label is left as it is.
    label: str | None = None
    file: str | None = _location()


# The unit a fact field is expressed in, by the end of its name (for messages only).
_FIELD_UNITS = (
    ("_mg_per_kg", "mg/kg"),
    ("mg_per_kg", "mg/kg"),
    ("_kg", "kg"),
    ("_cm", "cm"),
    ("_mg", "mg"),
    ("bmi", "kg/m²"),
)


@attrs.frozen
class ValidityRange:
    """The plausible range, and for readings the validity window, of one measured quantity.

    ``fact`` is ``observation`` (then ``key`` is a value set and the bounds are in
    ``unit``) or ``patient``, ``plan``, ``order``, ``medication``, ``trial`` (then ``key``
    is a number field of that fact). A value is plausible when it passes every bound
    given (``gt``, ``gte``, ``lt``, ``lte``). ``current_hours``: a reading of this kind
    counts as current only when it is timed and at most this many hours old (for a
    patient's weight or height: when its time is given, at most this old).
    """

    fact: str
    key: str
    rationale: str
    evidence: tuple[Evidence, ...]
    unit: str | None = None
    gt: Decimal | None = None
    gte: Decimal | None = None
    lt: Decimal | None = None
    lte: Decimal | None = None
    current_hours: Decimal | None = None
    file: str | None = _location()
    line: int | None = _location()

    def plausible(self, value: Decimal) -> bool:
        """Whether ``value`` (in the range's unit) passes every bound."""
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )

    def bounds(self) -> str:
        """The bounds in words, e.g. ``at least 40 and at most 300 mmHg``."""
        words = [
            f"{word} {value}"
            for word, value in (
                ("more than", self.gt),
                ("at least", self.gte),
                ("less than", self.lt),
                ("at most", self.lte),
            )
            if value is not None
        ]
        unit = self.unit or next((u for suffix, u in _FIELD_UNITS if self.key.endswith(suffix)), None)
        return " and ".join(words) + (f" {unit}" if unit else "")


@attrs.frozen
class ValidityPair:
    """Two components of one reading that must be ordered: ``lower`` below ``upper``.

    Diastolic below systolic: otherwise neither component is believed.
    """

    lower: str
    upper: str
    rationale: str
    evidence: tuple[Evidence, ...]


@attrs.frozen
class Validity:
    """``rulesets/validity.yaml``: when a value is believed and when a reading is current.

    ``future_minutes`` is the clock-skew tolerance: a reading timed more than this
    after ``now`` is a data-quality error, never the latest.
    """

    future_minutes: Decimal
    future_rationale: str
    future_evidence: tuple[Evidence, ...]
    ranges: tuple[ValidityRange, ...] = ()
    pairs: tuple[ValidityPair, ...] = ()
    file: str | None = _location()

    def range_of(self, fact: str, key: str) -> ValidityRange | None:
        """The range declared for a value set (observations) or a field (other facts)."""
        for item in self.ranges:
            if item.fact == fact and item.key == key:
                return item
        return None


@attrs.frozen
class Source:
    """An entry of the sources register that rules cite."""

    id: str
    title: str
    confidence_note: str | None = None


@attrs.frozen
class Follows:
    """For one route, a jurisdiction follows another's label (CH esketamine follows the EU SmPC).

    The followed jurisdiction's rules (and those of the jurisdictions it lies in) then
    apply to that route there; ``basis`` says why that label is the one to follow.
    """

    route: str
    label: str
    basis: str


@attrs.frozen
class Jurisdiction:
    """A jurisdiction; rules for ``parent`` apply to it too (DE is within EU).

    ``follows`` lists, per route, the jurisdiction whose label it follows.
    """

    id: str
    title: str
    parent: str | None = None
    follows: tuple[Follows, ...] = ()


@attrs.frozen
class Concept:
    """A safety concept every program of its routes must assess (a clinical-reference fact id).

    ``jurisdictions`` limits it to the programs whose scope (a jurisdiction, those it
    lies in, and the label it follows) meets one of them; ``("any",)`` is everywhere.
    ``note`` says why a concept is limited, or what assessing it means for a route.
    """

    id: str
    title: str
    routes: tuple[str, ...]
    jurisdictions: tuple[str, ...] = ("any",)
    note: str | None = None
    line: int | None = _location()


@attrs.frozen
class FactGap:
    """Why the programs of ``routes`` in ``jurisdictions`` have no rule for a fact the reference gives them.

    Empty ``routes`` or ``jurisdictions`` mean all of them.
    """

    why: str
    routes: tuple[str, ...] = ()
    jurisdictions: tuple[str, ...] = ()


@attrs.frozen
class Fact:
    """A fact of the clinical reference, as the register ``reference-facts.yaml`` records it.

    ``chapter`` is the reference chapter (1-6); ``routes`` the routes the reference says it
    applies to (its "applies to" codes mapped to the manifest's routes); ``jurisdictions``
    limits a fact one label states to the programs whose scope meets one of them
    (``("any",)``: everywhere). ``partial`` says what of it the rules do not encode and why,
    ``not_encoded`` why no rule does; ``gaps`` why some programs have no rule for it.
    Rules name the facts they encode in ``concepts``.
    """

    id: str
    chapter: int
    title: str
    routes: tuple[str, ...]
    confidence: str
    jurisdictions: tuple[str, ...] = ("any",)
    partial: str | None = None
    not_encoded: str | None = None
    gaps: tuple[FactGap, ...] = ()
    line: int | None = _location()


@attrs.frozen
class Group:
    """A presentation group: findings that are the same for every patient on a route.

    Rules name it (``group:``); reports and CDS Hooks cards show its members as one
    item (title and a compact list), while every finding stays in the Assessment. Only
    rules whose condition reads nothing but the treatment context (the setting) may
    be in a group, so that no patient-specific finding is folded into boilerplate.
    """

    id: str
    title: str
    note: str | None = None
    line: int | None = _location()


@attrs.frozen
class Refusal:
    """The engine refuses to assess ``route`` in ``jurisdiction`` (``any``: everywhere), and why."""

    route: str
    jurisdiction: str
    reason: str
    line: int | None = _location()


@attrs.frozen
class StatusLevel:
    """One overall status, with what it means for the clinician."""

    name: str
    meaning: str


@attrs.frozen
class StatusTable:
    """How findings add up to one status word.

    ``levels`` run from the most to the least serious; a finding's severity maps to
    a level through ``severities``; the most serious level reached wins, else
    ``default``. ``blocking`` levels are never reached by M-confidence rules. At a
    ``no_dose`` level no dose is offered (the dose rules' findings stay listed).
    """

    levels: tuple[StatusLevel, ...]
    severities: tuple[tuple[str, str], ...]
    default: str
    blocking: tuple[str, ...]
    no_dose: tuple[str, ...] = ()

    def status_of(self, severity: str) -> str | None:
        """Return the status a severity maps to, or ``None`` when it adds nothing."""
        mapped = dict(self.severities).get(severity)
        return None if mapped == self.default else mapped

    def rank(self, status: str) -> int:
        """Return the precedence of ``status``: 0 is the most serious."""
        return [level.name for level in self.levels].index(status)


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
        """The sha256 (hex) of the canonical form (computed on each call: keep it)."""
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
    return hashlib.sha256(canonical_json(ruleset).encode("utf-8")).hexdigest()
