"""The linter's logic: which conditions can never hold, and which imply which."""

from __future__ import annotations

from typing import Any, cast

import attrs
import pytest

from ketacds.ruleset.ir import All, AnyOf, Evidence, Not, Pattern, Ref, Rule
from ketacds.ruleset.ir import Test as T
from ketacds.ruleset.logic import dead_reason, equivalent, implies, pattern_implies, space
from ketacds.ruleset.plan import Alternative, alternatives


def make_rule(when, rule_id: str = "KCDS-TEST-001") -> Rule:
    return Rule(
        id=rule_id,
        title="t",
        category="interaction",
        severity="caution",
        routes=("ketamine-iv",),
        jurisdictions=("any",),
        when=when,
        confidence="R",
        evidence=(Evidence("KETAMAX", "x"),),
        rationale="for the logic tests",
    )


def flag(name: str) -> Pattern:
    return Pattern("flag", (T("name", "eq", name),))


def benzo(*tests: T, alias: str | None = None) -> Pattern:
    return Pattern("medication", (T("vs", "member", ("benzodiazepines",)), *tests), alias=alias)


class TestSpaces:
    def test_bool_fields_have_two_values(self):
        """A yes/no field that is neither yes nor no has no value left."""
        assert space("bool", [T("active", "ne", True), T("active", "ne", False)]).empty
        assert not space("bool", [T("active", "ne", True)]).empty

    def test_text_fields(self):
        """Text is open-ended: only equalities and exclusions can contradict."""
        assert space("text", [T("sex", "eq", "female"), T("sex", "in", ("male", "other"))]).empty
        assert not space("text", [T("sex", "ne", "female")]).empty
        assert space("text", [T("sex", "ne", "female")]).within(space("text", [T("sex", "present", True)]))
        assert not space("text", [T("sex", "ne", "a")]).within(space("text", [T("sex", "ne", "b")]))
        assert not space("text", [T("sex", "ne", "a")]).within(space("text", [T("sex", "eq", "b")]))

    def test_present_both_ways_is_a_contradiction(self):
        """A field cannot be both known and unknown."""
        both = space("number", [T("x", "present", True), T("x", "present", False)])

        assert both.empty
        assert not both.admits(1)
        assert both.within(space("number", [T("x", "eq", 1)]))

    def test_unknown_only_is_within_unknown_only(self):
        """An unknown-only field is within any space that admits unknown, and no other."""
        unknown = space("number", [T("x", "present", False)])

        assert unknown.within(space("number", []))
        assert not unknown.within(space("number", [T("x", "gt", 1)]))
        assert not space("number", []).within(space("number", [T("x", "present", False)]))

    def test_references_only_require_the_field(self):
        """A comparison with another fact's field requires the field to be known, nothing more."""
        assert space("text", [T("drug", "ne", Ref("first", "drug"))]).known


class TestPatterns:
    def test_membership_in_fewer_value_sets_implies_membership_in_more(self):
        """In X implies in (X or Y); not the other way round."""
        narrow = Pattern("medication", (T("vs", "member", ("a",)),))
        wide = Pattern("medication", (T("vs", "member", ("a", "b")),))

        assert pattern_implies(narrow, wide)
        assert not pattern_implies(wide, narrow)
        assert not pattern_implies(narrow, Pattern("condition", narrow.tests))

    def test_references_must_match_exactly(self):
        """A pattern with a reference implies another only when it carries the same reference."""
        joined = Pattern("trial", (T("drug", "ne", Ref("first", "drug")),))

        assert pattern_implies(joined, Pattern("trial", ()))
        assert not pattern_implies(Pattern("trial", ()), joined)


class TestDeadAlternatives:
    @pytest.mark.parametrize(
        ("when", "reason"),
        [
            (All((flag("x"), Not(flag("x")))), "needs flag 'x' both derived and not derived"),
            (Not(Pattern("patient", ())), "needs no patient fact, but there is always one"),
            (
                All((benzo(T("active", "eq", True)), Not(benzo()))),
                "would itself match the pattern it needs absent",
            ),
            (
                Pattern("patient", (T("age_years", "lt", 18), T("age_years", "gt", 65))),
                "no patient fact can have age_years < 18 and age_years > 65",
            ),
            (
                Pattern("patient", (T("sex", "in", ("a",)), T("sex", "in", ("b",)))),
                "no patient fact can have sex in [a] and sex in [b]",
            ),
            (
                Pattern("patient", (T("weight_kg", "present", False), T("weight_kg", "gt", 1))),
                "weight_kg unknown and weight_kg > 1",
            ),
        ],
    )
    def test_contradictions(self, when, reason):
        """Each kind of contradiction is found and explained."""
        (alternative,) = alternatives(make_rule(when))

        found = dead_reason(alternative)

        assert found is not None
        assert reason in found

    def test_two_patterns_on_the_one_patient_fact(self):
        """Patterns of one condition match different facts; there is only one patient fact."""
        two = Alternative(positive=(Pattern("patient", ()), Pattern("patient", (T("bmi", "gte", 30),))))

        assert "it needs two patient facts, but there is only one" in str(dead_reason(two))

    def test_negated_patterns_with_references_are_left_alone(self):
        """Absence of a pattern that refers to another fact is not judged."""
        when = All((benzo(alias="m"), Not(Pattern("medication", (T("drug", "eq", Ref("m", "drug")),)))))

        assert all(dead_reason(a) is None for a in alternatives(make_rule(when)))


class TestImplication:
    def test_a_narrower_condition_implies_a_wider_one(self):
        """benzodiazepine taken regularly ⇒ benzodiazepine."""
        narrow = make_rule(benzo(T("as_needed", "eq", False)))
        wide = make_rule(benzo(), "KCDS-TEST-002")

        assert implies(narrow, wide)
        assert not implies(wide, narrow)
        assert not equivalent(narrow, wide)
        assert equivalent(wide, attrs.evolve(wide, id="KCDS-TEST-003"))

    def test_alternatives_each_imply_some_alternative(self):
        """(a or b) ⇒ (b or a or c), but not ⇒ a."""
        a = Pattern("trial", (T("weeks", "gt", 6),))
        b = Pattern("allergy", ())
        c = Pattern("substance", ())

        assert implies(make_rule(AnyOf((a, b))), make_rule(AnyOf((b, a, c))))
        assert not implies(make_rule(AnyOf((a, b))), make_rule(a))

    def test_absences_and_flags(self):
        """No fact of a wide pattern implies none of a narrower one; a needed-absent flag is kept."""
        wide_absent = make_rule(All((Pattern("trial", ()), Not(benzo()))))
        narrow_absent = make_rule(All((Pattern("trial", ()), Not(benzo(T("active", "eq", True))))))
        with_flag = make_rule(All((Pattern("trial", ()), Not(flag("x")))))

        assert implies(wide_absent, narrow_absent)
        assert not implies(narrow_absent, wide_absent)
        assert not implies(make_rule(Pattern("trial", ())), with_flag)

    def test_two_facts_are_not_one(self):
        """Needing two different trials is not implied by one trial (distinct facts for distinct patterns)."""
        one = make_rule(Pattern("trial", ()))
        two = make_rule(
            All((Pattern("trial", (), alias="a"), Pattern("trial", (T("drug", "ne", Ref("a", "drug")),))))
        )

        assert implies(two, one)
        assert not implies(one, two)

    def test_tests_on_several_fields(self):
        """Age ≥ 18 and BMI ≥ 30 ⇒ BMI ≥ 30; a trial implies nothing about the patient."""
        both = make_rule(Pattern("patient", (T("age_years", "gte", 18), T("bmi", "gte", 30))))

        assert implies(both, make_rule(Pattern("patient", (T("bmi", "gte", 30),))))
        assert not implies(make_rule(Pattern("trial", ())), make_rule(Pattern("patient", ())))

    def test_unknown_operators_are_never_read_as_allowing_more(self):
        """A test with an operator the logic does not know proves no implication, and no contradiction."""
        unknown = T("drug", cast(Any, "not_in"), ("diazepam",))
        guarded = Pattern("medication", (unknown,))

        assert space("text", [unknown]).opaque
        assert not space("text", [unknown]).empty
        assert not pattern_implies(Pattern("medication", ()), guarded)
        assert pattern_implies(guarded, Pattern("medication", ()))
