"""Names found as whole words inside a text: the word index gives what a scan of every name gave."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketacds import load_ruleset
from ketacds.terminology.valuesets import Terminology, _WordIndex, _words


def _scan(text: str, table: dict[str, set[str]]) -> set[str]:
    """The former test, name by name: ``f" {name} " in f" {_words(text)} "``."""
    padded = f" {_words(text)} "
    return {vs_id for words, ids in table.items() if f" {words} " in padded for vs_id in ids}


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology(load_ruleset().valuesets)


def _real_words() -> list[str]:
    terminology = Terminology(load_ruleset().valuesets)
    words = {
        word
        for table in (terminology._name_words, terminology._synonym_words, terminology._ingredient_of_name)
        for name in table
        for word in name.split()
    }
    return sorted(words)


_WORDS = _real_words()
# Separators and characters that fold oddly: punctuation, tabs, digits glued to words,
# non-ASCII letters (the Kelvin sign lowercases to an ASCII "k", "İ" to "i" and a dot).
_ODD = ["", " ", "  ", "\t", "-", "/", ".", ",", "(", ")", "[", "]", "+", "'", "é", "K", "İ", "ß", "0", "12"]
_TOKEN = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_WORDS).map(str.upper),
    st.sampled_from(_WORDS).map(str.title),
    st.sampled_from(_ODD),
    st.text(max_size=6),
)
_TEXT = st.lists(st.tuples(_TOKEN, st.sampled_from(_ODD)), max_size=14).map(
    lambda parts: "".join(token + separator for token, separator in parts)
)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_index_finds_what_a_scan_finds_in_the_real_tables(terminology, text):
    """Names, synonyms and ingredient names of the bundled value sets, on texts built of their words."""
    for table in (terminology._name_words, terminology._synonym_words, terminology._ingredient_of_name):
        assert _WordIndex(table).find(text) == _scan(text, table)


_PIECES = ["a", "b", "ab", "1", "-", " ", "A"]
_NAME = st.one_of(st.text(max_size=12), st.lists(st.sampled_from(_PIECES), max_size=4).map("".join))


@settings(max_examples=300, deadline=None)
@given(
    names=st.dictionaries(_NAME, st.sets(st.sampled_from(["x", "y", "z"]), min_size=1), max_size=8),
    text=st.one_of(st.text(max_size=20), st.lists(st.sampled_from(_PIECES), max_size=10).map("".join)),
)
def test_index_finds_what_a_scan_finds_in_any_table(names, text):
    """Any names, including ones with no word at all (they match only a text with no word)."""
    table: dict[str, set[str]] = {}
    for name, ids in names.items():
        table.setdefault(_words(name), set()).update(ids)
    assert _WordIndex(table).find(text) == _scan(text, table)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Spravato 28 MG nasal spray", ("esketamine",)),
        ("esketamine", ("esketamine",)),
        ("ketamine hydrochloride", ("ketamine",)),
        ("", ()),
    ],
)
def test_tag_words(terminology, text, expected):
    """Whole words only: ``esketamine`` does not contain ``ketamine``."""
    assert set(expected) <= set(terminology.tag_words(text))
    if "esketamine" in text.lower() or "spravato" in text.lower():
        assert "ketamine" not in terminology.tag_words(text)


def test_the_ingredient_cache_stays_bounded(terminology, monkeypatch):
    """Ingredients are remembered per code and name, and the memory is emptied when full."""
    from ketacds.terminology import valuesets

    monkeypatch.setattr(valuesets, "TAG_CACHE_SIZE", 2)
    fresh = Terminology(load_ruleset().valuesets)
    names = ["Zoloft", "sertraline 100 MG Oral Tablet", "lorazepam", "Zoloft", "no drug at all"]

    assert [terminology.ingredients(None, n) for n in names] == [fresh.ingredients(None, n) for n in names]
    assert fresh.ingredients(None, "Zoloft") == ("sertraline",)
    assert 2 >= len(fresh._ingredient_cache)


def test_the_named_concepts_cache_stays_bounded(terminology, monkeypatch):
    """Named concepts are remembered per text, never for a long text, and emptied when full."""
    from ketacds.terminology import valuesets

    monkeypatch.setattr(valuesets, "TAG_CACHE_SIZE", 2)
    fresh = Terminology(load_ruleset().valuesets)
    texts = ["bipolar disorder", "psychosis", "bipolar disorder", "nothing", "x " * 200 + "psychosis"]

    assert [terminology.concepts_named(t) for t in texts] == [fresh.concepts_named(t) for t in texts]
    assert 2 >= len(fresh._named_cache)
    assert texts[-1] not in fresh._named_cache
