"""Plain words for conditions and facts (used by explanations, diffs and mutation reports)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ketacds.ruleset import ir
from ketacds.scenarios.words import Vocabulary, fact_noun, format_number


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


@pytest.fixture
def words(engine) -> Vocabulary:
    return Vocabulary(engine.ruleset)


@pytest.mark.parametrize(
    ("test", "text"),
    [
        (
            ir.Test("vs", "member", ("benzodiazepines", "phq-9")),
            "in value set “Benzodiazepines” or “PHQ-9 total score”",
        ),
        (ir.Test("weight_kg", "present", True), "weight recorded"),
        (ir.Test("sex", "present", False), "sex not recorded"),
        (ir.Test("active", "ne", True), "is not active"),
        (ir.Test("weeks", "lte", Decimal("6.5")), "duration 6.5 weeks or less"),
        (ir.Test("age_years", "lt", 18), "age below 18 years"),
        (ir.Test("sex", "ne", "male"), "sex is not male"),
        (ir.Test("sex", "eq", "female"), "sex is female"),
        (ir.Test("response", "in", ("none", "partial")), "response is none or partial"),
        (ir.Test("dose_mg", "gt", ir.Ref("first", "dose_mg")), "dose above the dose of ‘first’"),
        (ir.Test("new_flag", "eq", True), "new flag is yes"),
        (ir.Test("response", "not_in", ("none", "partial")), "response not in none or partial"),  # type: ignore[arg-type]
    ],
)
def test_requirements_in_words(words, test, text):
    """Each kind of test reads as a requirement, with the field's unit."""
    assert text == words.test(test)


@pytest.mark.parametrize(
    ("fact", "field", "text"),
    [
        ({"vs": []}, "vs", "in no value set the rules know"),
        ({}, "weight_kg", "weight not recorded"),
        ({"latest": False}, "latest", "is not the latest reading of its kind"),
        ({"value": 138, "unit": "mmHg"}, "value", "value is 138 mmHg"),
        ({"bmi": 29.9}, "bmi", "BMI is 29.9"),
        ({"new_flag": True}, "new_flag", "new flag yes"),
    ],
)
def test_what_a_fact_says(words, fact, field, text):
    """A fact's field, as found: its value and unit, or that it is not recorded."""
    assert text == words.actual(fact, field)


def test_nouns_and_numbers():
    """Fact types have nouns; numbers print as written."""
    assert ("an antidepressant trial", "a lab") == (fact_noun("trial"), fact_noun("lab"))
    assert ("30", "29.9", "30.0") == (
        format_number(30.0),
        format_number(29.9),
        format_number(Decimal("30.0")),
    )


def test_patterns_and_negations(words):
    """A pattern is a noun with its requirements; a flag names its producers; negation reads "no ..."."""
    trial = ir.Pattern("trial", (ir.Test("episode", "eq", "current"),), "first")

    assert "an antidepressant trial (call it ‘first’): episode is current" == words.pattern(trial)
    assert "any patient" == words.pattern(ir.Pattern("patient"))
    assert "the flag “indicated” (derived by KCDS-CAND-002, KCDS-CAND-003)" == words.flag("indicated")
    assert "the flag “nobody” (derived by no rule)" == words.flag("nobody")
    assert "no antidepressant trial is recorded" == words.absent(ir.Pattern("trial"))
