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


# -- recognition (issue 14 item 2) ------------------------------------------------------

from ketacds.ruleset.ir import Code, CodeRange, Ingredient, ValueSet  # noqa: E402
from ketacds.terminology.valuesets import normalise_code, terminology_for  # noqa: E402

_ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture(scope="module")
def small() -> Terminology:
    """A hand-made terminology, so the matching rules are tested apart from the content."""
    return Terminology(
        [
            ValueSet(
                id="mi",
                title="MI",
                source="test",
                ranges=(CodeRange(system=_ICD, start="I21", end="I22"),),
                synonyms=("nstemi", "myocardial infarction"),
            ),
            ValueSet(
                id="manic",
                title="Manic",
                source="test",
                codes=(Code(system=_ICD, code="F31.1*"),),
            ),
            ValueSet(
                id="ssri",
                title="SSRI",
                source="test",
                codes=(
                    Code(
                        system="http://www.nlm.nih.gov/research/umls/rxnorm",
                        code="36437",
                        display="Sertraline",
                    ),
                ),
                ingredients=(Ingredient(name="sertraline", also=("zoloft",)), Ingredient(name="citalopram")),
                names=("citalopram", "sertraline", "zoloft"),
            ),
            ValueSet(id="benzo", title="Benzodiazepines", source="test", names=("diazepam", "valium")),
            ValueSet(id="fine", title="Known", source="test", names=("paracetamol",), known="medication"),
        ],
        read={"mi", "manic", "ssri", "benzo"},
        read_by={"condition": {"mi", "manic"}, "medication": {"ssri", "benzo"}},
    )


@pytest.mark.parametrize(
    ("code", "inside"),
    [
        ("I21.4", True),
        ("I214", True),  # dots are folded
        ("i21.4", True),  # case is folded
        ("I22", True),  # the upper end is included
        ("I22.9", True),
        ("I21", True),
        ("I20.9", False),
        ("I23.0", False),  # just past the range
        ("I2", False),  # shorter than the range ends: not a member
    ],
)
def test_icd10_ranges_match_by_hierarchy(small, code, inside):
    """A range I21–I22 holds every code whose category lies between its ends, however written."""
    assert (("mi",) if inside else ()) == small.tag(Coding(system="icd-10-cm", code=code), None)


@pytest.mark.parametrize(
    ("code", "inside"), [("F31.10", True), ("F3113", True), ("F31.1", True), ("F31.2", False)]
)
def test_a_starred_code_is_a_prefix(small, code, inside):
    """``F31.1*`` among the codes matches F31.1 and everything below it, and nothing else."""
    assert (("manic",) if inside else ()) == small.tag(Coding(system="icd-10-cm", code=code), None)


def test_code_normalisation_is_per_system():
    """ICD-10-CM and ATC codes fold dots and case; SNOMED CT and RxNorm codes are left alone."""
    assert "F311" == normalise_code(_ICD, " f31.1 ")
    assert "N05BA12" == normalise_code("http://www.whocc.no/atc", "n05ba12")
    assert "401314000" == normalise_code("http://snomed.info/sct", "401314000")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Diazepam 5 MG Oral Tablet [Valium]", ("benzo",)),  # RxNorm SBD display string
        ("Valium", ("benzo",)),  # brand alone
        ("diazepam hydrochloride 2 mg tablet bid", ("benzo",)),  # salt, strength, form, frequency
        ("DIAZEPAM", ("benzo",)),
        ("Zoloft 100 MG Oral Tablet", ("ssri",)),
        ("Sertraline 100MG", ("ssri",)),
        ("diazepamine", ()),  # a word is a whole word, never a substring
        ("nordiazepam", ()),
    ],
)
def test_medication_names_are_read_by_their_words(small, name, expected):
    """A listed name inside a longer medication text is found as whole words."""
    assert expected == small.tag_text(None, name)


def test_exact_tagging_stays_exact(small):
    """``tag`` (conditions, observations) never matches inside a longer text."""
    assert () == small.tag(None, "Diazepam 5 MG Oral Tablet")


@pytest.mark.parametrize(
    ("code", "name", "expected"),
    [
        (None, "Zoloft", ("sertraline",)),
        (None, "sertraline 100 mg tablet", ("sertraline",)),
        (
            Coding(system="rxnorm", code="36437"),
            None,
            ("sertraline",),
        ),  # a code whose display is the ingredient
        (None, "citalopram", ("citalopram",)),
        (None, "CBT", ()),
    ],
)
def test_brand_and_generic_are_one_ingredient(small, code, name, expected):
    """Two names of one drug give one ingredient, so trials count it once."""
    assert expected == small.ingredients(code, name)


def test_what_is_read_and_what_is_named(small):
    """An item is seen when a rule-read or ``known`` value set has it; synonyms find concepts in free text."""
    assert small.is_read(("fine",), "medication")
    assert small.is_read(("mi",), "condition")
    assert not small.is_read(())
    # Membership counts per fact type: a medication whose text holds a condition's name is not read.
    assert not small.is_read(("mi",), "medication")
    assert not small.is_read(("fine",), "condition")
    assert ("mi",) == small.concepts_named("Old NSTEMI (2019), details unknown")
    assert () == small.concepts_named("Seasonal allergic rhinitis")


def test_the_bundled_rules_read_the_measured_snomed_codes():
    """The SNOMED CT codes issue 14 found invisible are now in value sets the rules read."""
    terms = terminology_for(load_ruleset())
    sct = "http://snomed.info/sct"
    for code, valueset in [
        ("401314000", "acute-cardiovascular-events"),  # NSTEMI
        ("401303003", "acute-cardiovascular-events"),  # STEMI (the code the issue called NSTEMI)
        ("353295004", "hyperthyroidism"),
        ("53741008", "cardiovascular-disease"),
        ("127295002", "raised-intracranial-pressure"),
        ("13645005", "respiratory-conditions"),
    ]:
        tags = terms.tag(Coding(system=sct, code=code), None)
        assert valueset in tags
        assert terms.is_read(tags)


def test_every_range_cites_its_source():
    """Every code range names its provenance, like every code."""
    for vs in load_ruleset().valuesets:
        assert all(r.source for r in vs.ranges), vs.id
