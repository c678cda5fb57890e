"""Value-set membership: which value sets a code or a typed name belongs to.

Matching is exact and predictable, nothing is fuzzy:

* a code matches when its system and code are listed; in hierarchical systems
  (ICD-10-CM, ATC) also when it starts with a listed prefix (``I21``, or ``F31.1*``
  written among the codes) or lies in a listed range (``I21``–``I22``). ICD-10-CM
  codes are compared with dots and case folded: ``i21.4``, ``I214`` and ``I21.4`` are
  one code;
* a name matches when it equals a listed name after case and white space are folded;
* :meth:`Terminology.tag_text` also matches a listed name as whole words inside a
  longer text — how medication, substance and allergy names are read
  (``"clonazepam tablet 2 mg bid"``, ``"Diazepam 5 MG Oral Tablet [Valium]"``:
  strength, form, salt and brand words around a listed name never hide it);
* :meth:`Terminology.concepts_named` finds the value sets whose ``synonyms`` (or names)
  a free text names, and :meth:`Terminology.concepts_described` those whose code displays
  it names or is part of, for reporting an unread item that looks like a concept a rule reads.

A Terminology also knows which value sets the rules read (:attr:`Terminology.read`)
and which lists the ruleset marks ``known`` (recognised, no rule needs them), so that
fact building can report every item that is neither.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ketacds.models.inputs import Coding
from ketacds.ruleset.ir import RuleSet, ValueSet
from ketacds.ruleset.plan import alternatives, valuesets_read

if TYPE_CHECKING:
    from ketacds.terminology.mapping import FhirMapping

__all__ = [
    "TAG_CACHE_SIZE",
    "Terminology",
    "normalise_code",
    "normalise_name",
    "read_valuesets",
    "terminology_for",
]

#: Distinct (code, name) pairs whose tags (and, apart, whose ingredients, and texts
#: whose named concepts) one Terminology remembers. A population has far fewer
#: distinct codes than items, so tagging is done once per code; each cache is emptied
#: when full, so free-text names cannot make it grow without bound.
TAG_CACHE_SIZE = 50_000
#: Ingredients and named concepts are remembered only for texts up to this long, so
#: that long free texts never fill their caches with large keys.
_CACHED_TEXT = 256

_ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
# Systems whose codes are compared with dots and case folded.
_FOLDED = frozenset({_ICD10, "http://hl7.org/fhir/sid/icd-10", "http://www.whocc.no/atc"})


def normalise_name(name: str) -> str:
    """Fold case and white space: ``"  Klonopin "`` → ``"klonopin"``."""
    return " ".join(name.lower().split())


def normalise_code(system: str, code: str) -> str:
    """A code as compared: ICD-10(-CM) and ATC codes without dots or spaces, upper case."""
    code = code.strip()
    if system in _FOLDED:
        return code.replace(".", "").replace(" ", "").upper()
    return code


_WORD = re.compile(r"[a-z0-9]+")
# A SNOMED CT semantic tag ending a display: "Subarachnoid hemorrhage (disorder)".
_SEMANTIC_TAG = re.compile(
    r"\s*\((?:disorder|finding|situation|morphologic abnormality|event|procedure|substance|"
    r"product|medicinal product|clinical drug|observable entity)\)\s*$"
)
_NONE: frozenset[str] = frozenset()


def _words(text: str) -> str:
    """A text's words, case folded, joined by single spaces: ``"Diazepam-5MG"`` → ``"diazepam 5mg"``."""
    return " ".join(_WORD.findall(text.lower()))


class _WordIndex:
    """Names, as their :func:`_words`, found as whole words inside a text by their first word.

    A name occurs in a text when its words are a run of the text's words, the same test
    as ``f" {name} " in f" {_words(text)} "``, but one dict lookup per word of the text
    instead of a scan of every name. Built once; read-only afterwards (safe to share
    between threads).
    """

    def __init__(self, table: Mapping[str, set[str]]) -> None:
        # First word → (the words after it, the ids the name gives).
        self._by_first: dict[str, list[tuple[list[str], frozenset[str]]]] = {}
        # A name with no word at all matches only a text with no word at all.
        self._wordless: frozenset[str] = frozenset(table.get("", ()))
        for words, ids in table.items():
            if words:
                first, *rest = words.split(" ")
                self._by_first.setdefault(first, []).append((rest, frozenset(ids)))

    def find(self, text: str) -> set[str]:
        """The ids of every name occurring in ``text`` as whole words."""
        words = _WORD.findall(text.lower())
        if not words:
            return set(self._wordless)
        found: set[str] = set()
        by_first = self._by_first
        for index, word in enumerate(words):
            entries = by_first.get(word)
            if entries is not None:
                for rest, ids in entries:
                    if not rest or words[index + 1 : index + 1 + len(rest)] == rest:
                        found |= ids
        return found


class Terminology:
    """An in-memory index of the ruleset's value sets, built once per engine.

    ``read`` is the set of value-set ids some rule or table reads; when not given,
    every value set counts as read (a bare terminology knows no rules).

    ``rules_dir`` is the ruleset directory the value sets come from (``None``: the
    bundled rulesets); its ``terminology/`` holds the FHIR reading tables,
    :attr:`fhir_mapping`, so that a FHIR record is read with the tables of the rules
    it is assessed with.
    """

    def __init__(
        self,
        valuesets: Iterable[ValueSet],
        read: Iterable[str] | None = None,
        read_by: Mapping[str, Iterable[str]] | None = None,
        *,
        rules_dir: Path | str | None = None,
    ) -> None:
        self.rules_dir = rules_dir
        self._fhir_mapping: FhirMapping | None = None
        self._codes: dict[tuple[str, str], set[str]] = {}
        self._prefixes: dict[str, list[tuple[str, str]]] = {}
        self._ranges: dict[str, list[tuple[str, str, str]]] = {}
        self._names: dict[str, set[str]] = {}
        # Whole-word forms of names and synonyms, for searching inside free text.
        self._name_words: dict[str, set[str]] = {}
        self._synonym_words: dict[str, set[str]] = {}
        # Ingredient of a name (generic or brand) or of a code whose display is one.
        self._ingredient_of_name: dict[str, set[str]] = {}
        self._ingredient_of_code: dict[tuple[str, str], set[str]] = {}
        valuesets = tuple(valuesets)
        self.titles: dict[str, str] = {vs.id: vs.title for vs in valuesets}
        self.ids: frozenset[str] = frozenset(self.titles)
        self.known: frozenset[str] = frozenset(vs.id for vs in valuesets if vs.known)
        self.read: frozenset[str] = frozenset(read) if read is not None else self.ids
        # Per fact type: the value sets rules read on it, plus the ``known`` lists for it.
        self._read_by: dict[str, frozenset[str]] | None = None
        if read_by is not None:
            known_by: dict[str, set[str]] = {}
            for vs in valuesets:
                if vs.known:
                    known_by.setdefault(vs.known, set()).add(vs.id)
            kinds = set(read_by) | set(known_by)
            self._read_by = {
                kind: frozenset(read_by.get(kind, ())) | frozenset(known_by.get(kind, ())) for kind in kinds
            }
        for vs in valuesets:
            for code in vs.codes:
                if code.code.endswith("*"):
                    stem = normalise_code(code.system, code.code[:-1])
                    self._prefixes.setdefault(code.system, []).append((stem, vs.id))
                else:
                    key = (code.system, normalise_code(code.system, code.code))
                    self._codes.setdefault(key, set()).add(vs.id)
            for prefix in vs.prefixes:
                text = normalise_code(prefix.system, prefix.code.rstrip("*"))
                self._prefixes.setdefault(prefix.system, []).append((text, vs.id))
            for r in vs.ranges:
                self._ranges.setdefault(r.system, []).append((r.start, r.end, vs.id))
            for name in vs.names:
                self._names.setdefault(normalise_name(name), set()).add(vs.id)
                if words := _words(name):
                    self._name_words.setdefault(words, set()).add(vs.id)
            for synonym in (*vs.synonyms, *vs.names):
                if words := _words(synonym):
                    self._synonym_words.setdefault(words, set()).add(vs.id)
            for ingredient in vs.ingredients:
                for name in (ingredient.name, *ingredient.also):
                    self._ingredient_of_name.setdefault(_words(name), set()).add(ingredient.name)
        # A code whose display is exactly an ingredient's name (or brand) some value set
        # lists names that ingredient, whichever value set lists the code: ATC N06AB10
        # "escitalopram" (SSRIs) is the escitalopram of the oral antidepressants' list.
        for vs in valuesets:
            for code in vs.codes:
                if code.display and (found := self._ingredient_of_name.get(_words(code.display))):
                    key = (code.system, normalise_code(code.system, code.code))
                    self._ingredient_of_code.setdefault(key, set()).update(found)
        self._name_index = _WordIndex(self._name_words)
        self._synonym_index = _WordIndex(self._synonym_words)
        self._valuesets = valuesets  # for the display index, built on first use (_displays)
        self._described_cache: dict[str, tuple[str, ...]] = {}  # concepts_described, by text
        self._ingredient_index = _WordIndex(self._ingredient_of_name)
        # Tags and ingredients by (system, code, name): each emptied when full. A thread
        # may see an entry vanish (then computes it again), never a wrong one.
        self._cache: dict[tuple[str | None, str | None, str | None, bool], tuple[str, ...]] = {}
        self._ingredient_cache: dict[tuple[str | None, str | None, str | None], tuple[str, ...]] = {}
        self._named_cache: dict[str, tuple[str, ...]] = {}  # concepts_named, by text

    @property
    def fhir_mapping(self) -> FhirMapping:
        """The FHIR reading tables of :attr:`rules_dir`, loaded on first use.

        They are its ``terminology/fhir-r4.yaml`` and ``rxnorm-products.yaml``.

        Raises:
            RulesetError: a table is missing, not YAML, or does not match its schema.
        """
        if self._fhir_mapping is None:
            from ketacds.terminology.mapping import load_fhir_mapping  # read only when FHIR is

            self._fhir_mapping = load_fhir_mapping(self.rules_dir)
        return self._fhir_mapping

    # -- membership ----------------------------------------------------------------

    def tag(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """Return the sorted ids of every value set the code or the (exact) name belongs to."""
        key = (code.system, code.code, name, False) if code is not None else (None, None, name, False)
        tags = self._cache.get(key)
        return tags if tags is not None else self._cached(code, name, False)

    def tag_text(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """Like :meth:`tag`, and a listed name also matches as whole words inside ``name``.

        For medication, substance and allergy names, which arrive with strength, form,
        salt and brand words around the ingredient. Words are runs of letters and
        digits, case folded: ``"esketamine"`` never contains ``ketamine``.
        """
        key = (code.system, code.code, name, True) if code is not None else (None, None, name, True)
        tags = self._cache.get(key)
        return tags if tags is not None else self._cached(code, name, True)

    def _cached(self, code: Coding | None, name: str | None, words: bool) -> tuple[str, ...]:
        key = (code.system, code.code, name, words) if code is not None else (None, None, name, words)
        tags = self._cache.get(key)
        if tags is None:
            if len(self._cache) >= TAG_CACHE_SIZE:
                self._cache.clear()
            found = set(self._code_tags(code))
            if name:
                found |= self._names.get(normalise_name(name), set())
                if words:
                    found |= self._name_index.find(name)
            tags = self._cache[key] = tuple(sorted(found))
        return tags

    def _code_tags(self, code: Coding | None) -> set[str]:
        if code is None:
            return set()
        text = normalise_code(code.system, code.code)
        found = set(self._codes.get((code.system, text), set()))
        for prefix, vs_id in self._prefixes.get(code.system, ()):
            if text.startswith(prefix):
                found.add(vs_id)
        for start, end, vs_id in self._ranges.get(code.system, ()):
            if start <= text[: len(start)] <= end and len(text) >= len(start):
                found.add(vs_id)
        return found

    def tag_words(self, text: str) -> tuple[str, ...]:
        """Return the sorted ids of every value set one of whose names occurs in ``text`` as whole words.

        ``"Spravato 28 MG nasal spray"`` contains the name ``spravato``.
        """
        return tuple(sorted(self._name_index.find(text)))

    def concepts_named(self, text: str) -> tuple[str, ...]:
        """The value sets some rule reads whose synonyms or names occur in ``text`` as whole words."""
        named = self._named_cache.get(text)
        if named is None:
            named = tuple(sorted(self._synonym_index.find(text) & self.read))
            if len(text) <= _CACHED_TEXT:
                if len(self._named_cache) >= TAG_CACHE_SIZE:
                    self._named_cache.clear()
                self._named_cache[text] = named
        return named

    def concepts_described(self, text: str) -> tuple[str, ...]:
        """The value sets some rule reads one of whose code displays ``text`` names, or is named in.

        A display occurring in ``text`` as whole words, or ``text`` (two words or more)
        occurring as a run of a display's words: "subarachnoid hemorrhage" is part of
        "Nontraumatic subarachnoid hemorrhage, unspecified". Only for deciding how loudly an
        unread item is reported (it never makes an item read, never fires a rule);
        remembered per text (bounded).
        """
        described = self._described_cache.get(text)
        if described is not None:
            return described
        index, places = self._displays
        found = index.find(text)
        words = _WORD.findall(_SEMANTIC_TAG.sub("", text).lower())
        if len(words) > 1:
            length = len(words)
            for split, place, ids in places.get(words[0], ()):
                if split[place : place + length] == words:
                    found |= ids
        described = tuple(sorted(found & self.read))
        if len(text) <= _CACHED_TEXT:
            if len(self._described_cache) >= TAG_CACHE_SIZE:
                self._described_cache.clear()
            self._described_cache[text] = described
        return described

    @functools.cached_property
    def _displays(self) -> tuple[_WordIndex, dict[str, list[tuple[list[str], int, frozenset[str]]]]]:
        """The code displays of the value sets some rule reads, as words, "(disorder)" and the like left out.

        An index finding them inside a text, and by each word of each display, (the
        display's words, the word's place, its value sets). Built on first use (an unread
        condition), not with the terminology; two threads may both build it, harmlessly.
        """
        displays: dict[str, set[str]] = {}
        for vs in self._valuesets:
            if vs.id in self.read:
                for code in vs.codes:
                    if code.display and (words := _words(_SEMANTIC_TAG.sub("", code.display))):
                        displays.setdefault(words, set()).add(vs.id)
        places: dict[str, list[tuple[list[str], int, frozenset[str]]]] = {}
        for words, ids in displays.items():
            split = words.split(" ")
            for place, word in enumerate(split):
                places.setdefault(word, []).append((split, place, frozenset(ids)))
        return _WordIndex(displays), places

    def concepts_meant(self, text: str, among: frozenset[str]) -> tuple[str, ...]:
        """The value sets of ``among`` some rule reads that ``text`` names, or that name ``text``.

        As :meth:`concepts_named`, and also a value set one of whose names or synonyms holds
        the words of ``text`` (two words or more) as a run: ``"blood pressure"`` is part of
        ``"systolic blood pressure"``, so a reading called "blood pressure" may be one the
        rules read. For deciding how loudly an unread observation is reported; it never
        makes an item read.
        """
        found = set(self.concepts_named(text)) & among
        words = _words(text)
        if " " in words:
            inner = f" {words} "
            for name, ids in self._synonym_words.items():
                if inner in f" {name} " and not among.isdisjoint(ids):
                    found |= ids & among & self.read
        return tuple(sorted(found))

    # -- what is seen --------------------------------------------------------------

    def is_read(self, tags: Iterable[str], fact: str | None = None) -> bool:
        """Whether an item with these tags is seen: in a value set a rule reads, or a ``known`` list.

        With ``fact`` (``"medication"``, ``"condition"``, ...), only the value sets rules read
        on facts of that type, and the ``known`` lists for it, count.
        """
        if fact is not None and self._read_by is not None:
            return not self._read_by.get(fact, _NONE).isdisjoint(tags)
        return not (self.read.isdisjoint(tags) and self.known.isdisjoint(tags))

    def seen_on(self, fact: str) -> frozenset[str]:
        """The value sets that make an item of type ``fact`` seen (read by a rule, or ``known``).

        ``is_read(tags, fact)`` is ``not seen_on(fact).isdisjoint(tags)``: one set test per item.
        """
        if self._read_by is not None:
            return self._read_by.get(fact, _NONE)
        return self._read_or_known

    @functools.cached_property
    def _read_or_known(self) -> frozenset[str]:
        return self.read | self.known

    def ingredients(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """The ingredients (of value sets that list ``ingredients``) the code or name names.

        ``"Zoloft"`` and ``"sertraline 100 MG Oral Tablet"`` both give ``("sertraline",)``.
        """
        key = (code.system, code.code, name) if code is not None else (None, None, name)
        ingredients = self._ingredient_cache.get(key)
        if ingredients is None:
            found: set[str] = set()
            if code is not None:
                found |= self._ingredient_of_code.get(
                    (code.system, normalise_code(code.system, code.code)), set()
                )
            if name:
                found |= self._ingredient_index.find(name)
            ingredients = tuple(sorted(found))
            if name is None or len(name) <= _CACHED_TEXT:
                if len(self._ingredient_cache) >= TAG_CACHE_SIZE:
                    self._ingredient_cache.clear()
                self._ingredient_cache[key] = ingredients
        return ingredients


def read_valuesets(ruleset: RuleSet) -> frozenset[str]:
    """The value sets some rule tests membership in, or some conversion table has a row for."""
    read: set[str] = set().union(*(valuesets_read(rule) for rule in ruleset.rules))
    read |= {entry.valueset for table in ruleset.tables for entry in table.entries}
    return frozenset(read)


def read_valuesets_by_fact(ruleset: RuleSet) -> dict[str, frozenset[str]]:
    """For each fact type, the value sets some rule tests on a fact of that type (or a table reads).

    A medication tagged only with a value set the rules read on *conditions* (its text
    happens to hold "mi" or "migraine") is not read: membership counts per fact type.
    """
    read: dict[str, set[str]] = {}
    for rule in ruleset.rules:
        for alternative in alternatives(rule):
            for pattern in (*alternative.positive, *alternative.absent):
                for test in pattern.tests:
                    if test.op == "member" and isinstance(test.value, tuple):
                        read.setdefault(pattern.fact, set()).update(str(vs) for vs in test.value)
    for table in ruleset.tables:
        read.setdefault(table.fact, set()).update(entry.valueset for entry in table.entries)
    return {fact: frozenset(ids) for fact, ids in read.items()}


def terminology_for(ruleset: RuleSet, rules_dir: Path | str | None = None) -> Terminology:
    """The terminology of a ruleset, knowing which of its value sets the rules read, per fact type.

    ``rules_dir``: the directory ``ruleset`` was loaded from (``None``: the bundled
    rulesets), whose FHIR reading tables the terminology carries.
    """
    return Terminology(
        ruleset.valuesets,
        read=read_valuesets(ruleset),
        read_by=read_valuesets_by_fact(ruleset),
        rules_dir=rules_dir,
    )
