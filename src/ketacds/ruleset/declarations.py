"""The manifest-level declarations of a ruleset (frozen attrs): everything but the rules.

Value sets and conversion tables, plausible ranges and validity windows
(``validity.yaml``), the sources register and the citations (:class:`Evidence`) that
rules and ranges make to it, jurisdictions and the labels they follow, the safety
concepts and the clinical-reference facts, presentation groups, refusals and the status
table. :class:`~ketacds.ruleset.ir.RuleSet` (in ``ruleset/ir.py``, which re-exports
every class here) holds them next to the rules; like the rules they are engine-neutral
and part of the canonical form, hence of the digest.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import attrs

__all__ = [
    "LOCATION",
    "Code",
    "CodeRange",
    "Concept",
    "Evidence",
    "Fact",
    "FactGap",
    "Follows",
    "Group",
    "Ingredient",
    "Jurisdiction",
    "Refusal",
    "Source",
    "StatusLevel",
    "StatusTable",
    "Table",
    "TableEntry",
    "Validity",
    "ValidityPair",
    "ValidityRange",
    "ValueSet",
    "location_field",
]

#: Marks attributes that say where something was written, not what it means;
#: they are left out of the canonical form and of equality.
LOCATION = {"canonical": False}


def location_field() -> Any:
    """An attribute for a source location (file, line): optional, not compared, not canonical."""
    return attrs.field(default=None, eq=False, repr=False, metadata=LOCATION)


@attrs.frozen
class Evidence:
    """A citation: a source id from the register and the section relied on."""

    source: str
    section: str | None = None


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
    file: str | None = location_field()
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
    file: str | None = location_field()

    @functools.cached_property
    def values(self) -> Mapping[str, Decimal]:
        """The table's value by value set (of entries naming one value set twice, the last).

        Built on first use, the same by every thread; not an attrs field (not in the digest).
        """
        return types.MappingProxyType({entry.valueset: entry.value for entry in self.entries})


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
    file: str | None = location_field()
    line: int | None = location_field()

    def plausible(self, value: Decimal | int) -> bool:
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


_NO_RANGES: Mapping[str, ValidityRange] = types.MappingProxyType({})


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
    file: str | None = location_field()

    def range_of(self, fact: str, key: str) -> ValidityRange | None:
        """The range declared for a value set (observations) or a field (other facts)."""
        return self._range_index.get((fact, key))

    def ranges_on(self, fact: str) -> tuple[tuple[str, ValidityRange], ...]:
        """The ranges declared on ``fact`` (one per key, the first declared), sorted by key."""
        return self._ranges_on.get(fact, ())

    def ranged_keys(self, fact: str) -> frozenset[str]:
        """The keys of :meth:`ranges_on` ``fact``, as a set."""
        return self._ranged_keys.get(fact, frozenset())

    def checked_on(self) -> Mapping[str, tuple[frozenset[str], tuple[tuple[str, ValidityRange], ...]]]:
        """For each fact type with ranges: its :meth:`ranged_keys` and its :meth:`ranges_on`."""
        return self._checked_on

    def ranges_by_key(self, fact: str) -> Mapping[str, ValidityRange]:
        """The ranges declared on ``fact`` by key (what :meth:`range_of` finds, one lookup per key)."""
        return self._ranges_by_key.get(fact, _NO_RANGES)

    @functools.cached_property
    def _range_index(self) -> dict[tuple[str, str], ValidityRange]:
        # The first range declared for a (fact, key) is the one that counts. Built on
        # first use, the same by every thread; not an attrs field (not in the digest).
        index: dict[tuple[str, str], ValidityRange] = {}
        for item in self.ranges:
            index.setdefault((item.fact, item.key), item)
        return index

    @functools.cached_property
    def _ranges_on(self) -> dict[str, tuple[tuple[str, ValidityRange], ...]]:
        on: dict[str, list[tuple[str, ValidityRange]]] = {}
        for (fact, key), item in self._range_index.items():
            on.setdefault(fact, []).append((key, item))
        return {fact: tuple(sorted(items, key=lambda pair: pair[0])) for fact, items in on.items()}

    @functools.cached_property
    def _checked_on(self) -> Mapping[str, tuple[frozenset[str], tuple[tuple[str, ValidityRange], ...]]]:
        return types.MappingProxyType(
            {fact: (self._ranged_keys[fact], on) for fact, on in self._ranges_on.items()}
        )

    @functools.cached_property
    def _ranges_by_key(self) -> dict[str, Mapping[str, ValidityRange]]:
        return {fact: types.MappingProxyType(dict(items)) for fact, items in self._ranges_on.items()}

    @functools.cached_property
    def _ranged_keys(self) -> dict[str, frozenset[str]]:
        return {fact: frozenset(key for key, _ in items) for fact, items in self._ranges_on.items()}


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
    line: int | None = location_field()


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
    line: int | None = location_field()


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
    line: int | None = location_field()


@attrs.frozen
class Refusal:
    """The engine refuses to assess ``route`` in ``jurisdiction`` (``any``: everywhere), and why."""

    route: str
    jurisdiction: str
    reason: str
    line: int | None = location_field()


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
