"""Loading rulesets: schema, names, scopes, and errors that say file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketacds import EngineCapacityError, RulesetError, load_ruleset
from ketacds.engine.backends.durable import DurableProgram
from ketacds.ruleset.plan import stratify
from rulesets_fixtures import GOOD_RULE, add_rule, copy_rules, line_of


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return copy_rules(tmp_path)


def test_bundled_ruleset_loads():
    """The shipped rules load, sorted by id, each with evidence and a confidence."""
    ruleset = load_ruleset()

    assert [r.id for r in ruleset.rules] == sorted(r.id for r in ruleset.rules)
    assert all(r.evidence and r.confidence in "RSM" for r in ruleset.rules)


def test_a_good_extra_rule_loads(rules_dir: Path):
    """The fixture rule itself is valid, so each failure below is due to its one change."""
    add_rule(rules_dir, GOOD_RULE)

    assert "KCDS-TEST-001" in {r.id for r in load_ruleset(rules_dir).rules}


@pytest.mark.parametrize(
    ("change", "message", "suggestion", "needle"),
    [
        (
            ("in: benzodiazepines", "in: benzodiazepine"),
            "unknown value set",
            "benzodiazepines",
            "in: benzodiazepine",
        ),
        (("medication: {", "medicaton: {"), "unknown fact type", "medication", "medicaton"),
        (("active: true}", "actve: true}"), "no field 'actve'", "active", "actve"),
        (("source: KETAMAX", "source: KETAMAXX"), "unknown source", "KETAMAX", "KETAMAXX"),
        (("routes: [ketamine-iv]", "routes: [ketamine-ivv]"), "unknown route", "ketamine-iv", "ketamine-ivv"),
        (("severity: caution", "severity: cautoin"), "unknown severity", "caution", "cautoin"),
        (("active: true}", "active: yes-please}"), "expected a bool", None, "yes-please"),
        (("active: true}", "active: {gt: 3}}"), "'gt' does not apply", None, "gt: 3"),
    ],
)
def test_errors_point_at_file_and_line(rules_dir: Path, change, message, suggestion, needle):
    """A mistake in a rule is reported at its file and line, with a did-you-mean."""
    add_rule(rules_dir, GOOD_RULE.replace(*change))

    with pytest.raises(RulesetError) as info:
        load_ruleset(rules_dir)

    error = info.value
    assert message in error.reason
    assert "interactions.yaml" == error.file
    assert suggestion == error.suggestion
    assert error.line is not None
    assert abs(line_of(rules_dir, needle) - error.line) <= 1


def test_schema_error_names_the_field(rules_dir: Path):
    """A rule without evidence fails the JSON Schema, at the rule's line."""
    add_rule(rules_dir, GOOD_RULE.replace("    evidence: [{source: KETAMAX, section: Interactions}]\n", ""))

    with pytest.raises(RulesetError, match="evidence") as info:
        load_ruleset(rules_dir)

    assert line_of(rules_dir, "KCDS-TEST-001") == info.value.line


def test_duplicate_yaml_keys_are_refused(rules_dir: Path):
    """Two values for one key is an error: the loader never keeps 'the second one'."""
    add_rule(rules_dir, GOOD_RULE.replace("    confidence: R\n", "    confidence: R\n    confidence: S\n"))

    with pytest.raises(RulesetError, match="duplicate key") as info:
        load_ruleset(rules_dir)

    assert line_of(rules_dir, "confidence: S") == info.value.line


def test_duplicate_rule_ids_are_refused(rules_dir: Path):
    """Rule ids are unique across files; the error names the first definition."""
    add_rule(rules_dir, GOOD_RULE.replace("KCDS-TEST-001", "KCDS-INT-001"))

    with pytest.raises(
        RulesetError, match=r"duplicate rule id KCDS-INT-001 \(first defined at interactions\.yaml:\d+\)"
    ):
        load_ruleset(rules_dir)


def test_unconfirmed_rules_cannot_block(rules_dir: Path):
    """An M-confidence rule with a blocking severity is refused: M is advisory only."""
    add_rule(
        rules_dir,
        GOOD_RULE.replace("severity: caution", "severity: absolute").replace(
            "confidence: R", "confidence: M"
        ),
    )

    with pytest.raises(RulesetError, match="advisory only"):
        load_ruleset(rules_dir)


def test_unconfirmed_rules_may_advise(rules_dir: Path):
    """An M-confidence rule with a caution severity loads."""
    add_rule(rules_dir, GOOD_RULE.replace("confidence: R", "confidence: M"))

    assert "M" == load_ruleset(rules_dir).rule("KCDS-TEST-001").confidence


def test_flags_must_be_derived_somewhere(rules_dir: Path):
    """Reading a flag no rule derives is a typo, reported with a suggestion."""
    add_rule(
        rules_dir, GOOD_RULE.replace("      - medication:", "      - flag: indicatd\n      - medication:")
    )

    with pytest.raises(RulesetError, match="no rule derives") as info:
        load_ruleset(rules_dir)

    assert "indicated" == info.value.suggestion


def test_negation_cycles_are_refused(rules_dir: Path):
    """A flag that depends on its own absence cannot be stratified."""
    cyclic = (
        GOOD_RULE.replace("category: interaction", "category: derivation")
        .replace("      finding: {message: A test finding.}", "      flag: loop")
        .replace("      - medication:", "      - not: {flag: loop}\n      - medication:")
    )
    add_rule(rules_dir, cyclic)

    with pytest.raises(RulesetError, match="cycle through 'not'"):
        load_ruleset(rules_dir)


def test_references_must_be_bound_earlier(rules_dir: Path):
    """A reference to an alias no earlier pattern defines is refused."""
    add_rule(rules_dir, GOOD_RULE.replace("active: true}", "active: true, drug: {ne: {ref: other.drug}}}"))

    with pytest.raises(RulesetError, match="no earlier pattern"):
        load_ruleset(rules_dir)


def test_not_around_a_join_is_refused(rules_dir: Path):
    """'not' over several patterns cannot be decided before assertion, so it is refused."""
    add_rule(
        rules_dir,
        GOOD_RULE.replace(
            "      - medication: {in: benzodiazepines, active: true}",
            "      - not: [{medication: {active: true}}, {trial: {}}]",
        ),
    )

    with pytest.raises(RulesetError, match="'not' may only contain"):
        load_ruleset(rules_dir)


def test_strata_put_negated_flags_first():
    """The rule that needs 'indicated' absent runs after every rule that derives it."""
    ruleset = load_ruleset()
    strata = stratify(ruleset.rules)
    producers = [r.id for r in ruleset.rules if "indicated" in r.flags]

    assert producers
    assert all(strata["KCDS-CAND-004"] > strata[p] for p in producers)


def test_too_many_rules_on_one_fact_type_is_refused(rules_dir: Path):
    """More rules reading one fact type than durable_rules allows is refused at compile time."""
    add_rule(
        rules_dir, "".join(GOOD_RULE.replace("KCDS-TEST-001", f"KCDS-TEST-{n:03d}") for n in range(1, 62))
    )
    ruleset = load_ruleset(rules_dir)
    rules = [r for r in ruleset.rules if "ketamine-iv" in r.routes]

    with pytest.raises(EngineCapacityError, match="read 'medication' facts"):
        DurableProgram("capacity_test", rules, stratify(ruleset.rules))


def test_references_must_name_a_field_of_the_same_kind(rules_dir: Path):
    """A reference to a field the bound fact lacks (or of another kind) is refused."""
    joined = GOOD_RULE.replace(
        "      - medication: {in: benzodiazepines, active: true}",
        "      - medication: {as: first, in: benzodiazepines}\n"
        "      - medication: {drug: {ne: {ref: first.dose_mg}}}",
    )
    add_rule(rules_dir, joined)

    with pytest.raises(RulesetError, match="no text field 'dose_mg'"):
        load_ruleset(rules_dir)


def test_too_many_rules_in_one_program_is_refused(monkeypatch):
    """A program with more durable rules than the limit is refused with a clear message."""
    monkeypatch.setattr("ketacds.engine.backends.durable.capacity.MAX_RULES_PER_PROGRAM", 5)
    ruleset = load_ruleset()

    with pytest.raises(EngineCapacityError, match="exceed durable_rules' limit of about 512"):
        DurableProgram("capacity_test", ruleset.rules, stratify(ruleset.rules))
