"""Rules in plain English: each kind of test reads as an auditor would say it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ketacds.markup import to_text
from ketacds.ruleset.describe import Describer
from ketacds.ruleset.ir import All, AnyOf, Not, Pattern, Ref
from ketacds.ruleset.ir import Test as T
from ketacds.ruleset.load import load_ruleset
from ketacds.ruleset.plan import flags_read
from rulesets_fixtures import RULES


@pytest.fixture(scope="module")
def words() -> Describer:
    return Describer(load_ruleset(RULES))


def said(words: Describer, condition) -> str:
    return words.sentence(condition)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            Pattern(
                "condition",
                (T("vs", "member", ("aneurysmal-vascular-disease",)), T("active", "eq", True)),
            ),
            "an active condition in the value set Aneurysmal vascular disease"
            " (18 codes, 2 code prefixes, 7 names)",
        ),
        (
            Pattern("patient", (T("age_years", "lt", 18),)),
            "the patient, with age below 18 years",
        ),
        (
            Pattern("patient", (T("bmi", "gte", Decimal("30.5")), T("sex", "in", ("female", "male")))),
            "the patient, with BMI at least 30.5 kg/m²; sex: female or male",
        ),
        (Pattern("patient", (T("weight_kg", "present", False),)), "the patient, with weight not recorded"),
        (Pattern("patient", ()), "the patient (true in every assessment)"),
        (
            Pattern("medication", (T("as_needed", "eq", False), T("drug", "ne", "diazepam"))),
            "a medication, with taken as needed: no; drug other than diazepam",
        ),
        (
            Pattern(
                "trial",
                (T("drug", "ne", Ref("first", "drug")), T("weeks", "gt", Ref("first", "weeks"))),
            ),
            "an antidepressant trial, with drug different from the drug of first;"
            " duration above the duration of first",
        ),
        (
            Pattern(
                "observation",
                (T("vs", "member", ("phq-9", "nope")), T("latest", "eq", True)),
                alias="o",
            ),
            "the latest observation in one of the value sets PHQ-9 total score (1 code, 3 names), nope"
            " (call it o)",
        ),
        (Pattern("allergy", (T("active", "ne", True),)), "an allergy, with active: no"),
    ],
)
def test_patterns(words, pattern, expected):
    """One pattern reads as one noun phrase with its qualifiers."""
    assert expected == said(words, pattern)


def test_combinations_and_negation(words):
    """all / any / not read as 'all of', 'any of', 'no ...' and 'none of'."""
    trial = Pattern("trial", ())
    negated_any = Not(AnyOf((trial, Pattern("allergy", ()))))

    assert "all of: (an antidepressant trial; no allergy)" == said(
        words, All((trial, Not(Pattern("allergy", ()))))
    )
    assert "none of: (an antidepressant trial; an allergy)" == said(words, negated_any)
    assert "an antidepressant trial" == said(words, Not(Not(trial)))


def test_flags_name_their_producers(words):
    """A flag test says which rules derive it, or that none does."""
    indicated = Pattern("flag", (T("name", "eq", "indicated"),))
    unknown = Pattern("flag", (T("name", "eq", "nobody"),))

    producers = ", ".join(r.id for r in words.ruleset.rules if "indicated" in r.flags)

    assert f"the flag indicated has not been derived (derived by {producers})" == said(words, Not(indicated))
    assert "the flag nobody has been derived (no rule derives it)" == said(words, unknown)


def test_consequences(words):
    """A rule's consequence lists its finding with the status it leads to, its flags and its dose."""
    ruleset = words.ruleset
    dose = [to_text(i.content) for i in words.consequence(ruleset.rule("KCDS-DOSE-001"))]
    flag = [to_text(i.content) for i in words.consequence(ruleset.rule("KCDS-CAND-001"))]
    gap = [to_text(i.content) for i in words.consequence(ruleset.rule("KCDS-GAP-005"))]

    assert dose[-1] == (
        "computes the dose standard (actual body weight) with weight-based "
        "(infusion_minutes 40, mg_per_kg 0.5, weight actual)"
    )
    readers = ", ".join(r.id for r in ruleset.rules if "trd-trial-criteria" in set().union(*flags_read(r)))
    assert [f"derives the flag trd-trial-criteria (read by {readers})"] == flag
    assert gap[0].startswith("reports a finding of severity data-gap (leads to status incomplete): BMI is 30")
    assert "missing datum: sex" == gap[1]
    assert "any jurisdiction" == words.jurisdictions(ruleset.rule("KCDS-GAP-005"))
