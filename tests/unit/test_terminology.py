"""Value-set membership of codes and typed names."""

from __future__ import annotations

import pytest

from ketacds import Coding, load_ruleset
from ketacds.terminology.valuesets import Terminology


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology(load_ruleset().valuesets)


@pytest.mark.parametrize(
    ("code", "name", "expected"),
    [
        (Coding(system="icd-10-cm", code="F33.2"), None, ("depressive-disorders",)),
        (Coding(system="icd-10-cm", code="F32.A"), None, ("depressive-disorders",)),  # by prefix
        (Coding(system="atc", code="N05BA12"), None, ("alprazolam", "benzodiazepines")),
        (Coding(system="rxnorm", code="2598"), None, ("benzodiazepines", "clonazepam")),
        (None, "  Klonopin ", ("benzodiazepines", "clonazepam")),
        (Coding(system="loinc", code="8480-6"), None, ("systolic-blood-pressure",)),
        (Coding(system="icd-10-cm", code="I10"), None, ("hypertension",)),
        (Coding(system="icd-10-cm", code="J45.909"), None, ()),
        (None, "clonazepam 0.5 mg tablet", ()),  # matching is exact, never fuzzy
    ],
)
def test_tagging(terminology, code, name, expected):
    """Codes match exactly or by prefix; names match after folding case and space."""
    assert expected == terminology.tag(code, name)


def test_value_sets_cite_their_sources():
    """Every value set names its source, and every listed code its own provenance."""
    for vs in load_ruleset().valuesets:
        assert vs.source
        assert all(code.source for code in vs.codes)


def test_the_tag_cache_stays_bounded(terminology, monkeypatch):
    """Tags are remembered per code and name, and the memory is emptied when full."""
    from ketacds.terminology import valuesets

    monkeypatch.setattr(valuesets, "TAG_CACHE_SIZE", 2)
    fresh = Terminology(load_ruleset().valuesets)
    names = ["klonopin", "lorazepam", "sertraline", "klonopin"]

    assert [terminology.tag(None, n) for n in names] == [fresh.tag(None, n) for n in names]
    assert 2 >= len(fresh._cache)
