"""Value-set membership: which value sets a code or a typed name belongs to.

Matching is exact and predictable: a code matches when its system and code are
listed, or when the code starts with a listed prefix in the same system (for
hierarchical systems such as ICD-10-CM and ATC); a name matches when it equals a
listed name after case and white space are folded. Nothing is fuzzy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ketacds.models.inputs import Coding
from ketacds.ruleset.ir import ValueSet

__all__ = ["TAG_CACHE_SIZE", "Terminology", "normalise_name"]

#: Distinct (code, name) pairs whose tags one Terminology remembers. A population
#: has far fewer distinct codes than items, so tagging is done once per code; the
#: cache is emptied when full, so free-text names cannot make it grow without bound.
TAG_CACHE_SIZE = 50_000


def normalise_name(name: str) -> str:
    """Fold case and white space: ``"  Klonopin "`` → ``"klonopin"``."""
    return " ".join(name.lower().split())


class Terminology:
    """An in-memory index of the ruleset's value sets, built once per engine."""

    def __init__(self, valuesets: Iterable[ValueSet]) -> None:
        self._codes: dict[tuple[str, str], set[str]] = {}
        self._prefixes: dict[str, list[tuple[str, str]]] = {}
        self._names: dict[str, set[str]] = {}
        self.ids: frozenset[str] = frozenset()
        ids = set()
        for vs in valuesets:
            ids.add(vs.id)
            for code in vs.codes:
                self._codes.setdefault((code.system, code.code), set()).add(vs.id)
            for prefix in vs.prefixes:
                self._prefixes.setdefault(prefix.system, []).append((prefix.code, vs.id))
            for name in vs.names:
                self._names.setdefault(normalise_name(name), set()).add(vs.id)
        self.ids = frozenset(ids)
        self._cache: dict[tuple[str | None, str | None, str | None], tuple[str, ...]] = {}

    def tag(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        """Return the sorted ids of every value set the code or the name belongs to."""
        key = (code.system, code.code, name) if code is not None else (None, None, name)
        tags = self._cache.get(key)
        if tags is None:
            if len(self._cache) >= TAG_CACHE_SIZE:
                self._cache.clear()
            tags = self._cache[key] = self._tag(code, name)
        return tags

    def _tag(self, code: Coding | None, name: str | None) -> tuple[str, ...]:
        found: set[str] = set()
        if code is not None:
            found |= self._codes.get((code.system, code.code), set())
            for prefix, vs_id in self._prefixes.get(code.system, ()):
                if code.code.startswith(prefix):
                    found.add(vs_id)
        if name:
            found |= self._names.get(normalise_name(name), set())
        return tuple(sorted(found))

    def tag_words(self, text: str) -> tuple[str, ...]:
        """Return the sorted ids of every value set one of whose names occurs in ``text`` as whole words.

        Words are runs of letters and digits, case folded: ``"Spravato 28 MG nasal spray"``
        contains the name ``spravato``, and ``"esketamine"`` never contains ``ketamine``.
        For recognising a product from its free text where no code is known; ``tag``
        stays the exact match the rules rely on.
        """
        padded = f" {_words(text)} "
        found = {
            vs_id
            for name, ids in self._names.items()
            if (words := _words(name)) and f" {words} " in padded
            for vs_id in ids
        }
        return tuple(sorted(found))


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
