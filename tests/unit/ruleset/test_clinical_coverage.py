"""docs/clinical-coverage.md: the fact register against the rules, fresh, and honest about gaps."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ketacds.cli import main
from ketacds.errors import RulesetError
from ketacds.ruleset.facts import cell, problems, render_coverage
from ketacds.ruleset.load import load_checked, load_ruleset
from ketacds.ruleset.scope import programs
from rulesets_fixtures import RULES, copy_rules, replace
from support import ROOT

PAGE = ROOT / "docs" / "clinical-coverage.md"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset(RULES)


def test_committed_page_is_fresh(ruleset):
    """docs/clinical-coverage.md is exactly what `ketacds rules coverage` makes of rulesets/ now."""
    assert PAGE.read_text(encoding="utf-8") == render_coverage(ruleset), (
        "docs/clinical-coverage.md is stale: run `make docs` "
        "(or `ketacds rules coverage rulesets --out docs/clinical-coverage.md`) and commit the result"
    )


def test_register_and_rules_agree(ruleset):
    """Every fact no rule names says why; no not-encoded fact has a rule; no program is a silent gap."""
    assert [] == [message for _, message in problems(ruleset)]


def test_every_rule_concept_names_a_register_fact(ruleset):
    """A rule's concepts are facts of the register (the manifest's concepts are a subset of it)."""
    facts = {fact.id for fact in ruleset.facts}
    named = {concept for rule in ruleset.rules for concept in rule.concepts}

    assert named <= facts
    assert {concept.id for concept in ruleset.concepts} <= facts


def test_every_fact_marked_encoded_has_a_rule(ruleset):
    """A fact without a not_encoded reason is named by at least one rule."""
    unnamed = [
        fact.id
        for fact in ruleset.facts
        if fact.routes
        and not fact.not_encoded
        and not any(fact.id in rule.concepts for rule in ruleset.rules)
    ]

    assert [] == unnamed


def test_the_register_lists_every_chapter_of_the_reference(ruleset):
    """§1-§6 each have facts, ids are unique, and each has a title and a known confidence."""
    ids = [fact.id for fact in ruleset.facts]

    assert len(ids) == len(set(ids))
    assert {1, 2, 3, 4, 5, 6} == {fact.chapter for fact in ruleset.facts}
    assert all(fact.confidence in ("R", "S", "M") for fact in ruleset.facts)


def test_cells_follow_scope_labels_and_refusals(ruleset):
    """A label-limited fact is n/a elsewhere; a followed label's rules count; a refused program says so."""
    facts = {fact.id: fact for fact in ruleset.facts}

    assert "full" == cell(ruleset, facts["MON_REMS_ENROL"], "esketamine-nasal", "US").state
    assert "n/a" == cell(ruleset, facts["MON_REMS_ENROL"], "esketamine-nasal", "EU").state
    assert "n/a" == cell(ruleset, facts["MON_REMS_ENROL"], "ketamine-iv", "US").state
    ch = cell(ruleset, facts["CI_RECENT_CV_EVENT_EU"], "esketamine-nasal", "CH")
    assert ("full", ("KCDS-CI-009",)) == (ch.state, ch.rules)
    assert "refused" == cell(ruleset, facts["CI_ANEURYSM"], "esketamine-nasal", "CA").state
    partial = cell(ruleset, facts["PREC_IOP_GLAUCOMA"], "ketamine-iv", "US")
    assert "partial" == partial.state
    assert partial.why == facts["PREC_IOP_GLAUCOMA"].partial
    missing = cell(ruleset, facts["DOSE_JAPANESE"], "esketamine-nasal", "US")
    assert "not encoded" == missing.state
    assert missing.why


def test_the_page_shows_not_encoded_facts_with_their_reasons(ruleset):
    """No fact drops out of the page: each one not encoded is listed with its reason."""
    page = render_coverage(ruleset)

    for fact in ruleset.facts:
        assert f"`{fact.id}`" in page
        if fact.not_encoded:
            assert " ".join(fact.not_encoded.split()[:6]) in page
    assert "every item is encoded" not in page.lower()


def test_a_rule_that_loses_its_tag_makes_a_gap_the_test_sees(tmp_path: Path):
    """Untag the only rule for a fact in a program: lint and this test report it, and the page says GAP."""
    rules_dir = copy_rules(tmp_path)
    replace(rules_dir, "interactions.yaml", "concepts: [INT_ERGOMETRINE]", "concepts: [INT_THYROID]")
    checked = load_checked(rules_dir)
    assert checked.ruleset is not None
    assert not checked.problems

    found = [message for fact, message in problems(checked.ruleset) if fact.id == "INT_ERGOMETRINE"]

    assert found
    assert "no rule names INT_ERGOMETRINE" in found[0]


def test_a_program_gap_needs_a_reason(tmp_path: Path):
    """A fact whose rule does not reach a program it applies to is a GAP until the register says why."""
    rules_dir = copy_rules(tmp_path)
    replace(
        rules_dir,
        "reference-facts.yaml",
        '  - id: INT_ERGOMETRINE\n    chapter: 3\n    title: "Ergometrine with ketamine"\n'
        "    routes: [ketamine-iv]",
        '  - id: INT_ERGOMETRINE\n    chapter: 3\n    title: "Ergometrine with ketamine"\n'
        "    routes: [ketamine-iv, esketamine-nasal]",
    )
    ruleset = load_ruleset(rules_dir)
    fact = next(f for f in ruleset.facts if f.id == "INT_ERGOMETRINE")

    assert "GAP" == cell(ruleset, fact, "esketamine-nasal", "US").state
    assert any(f is fact and "esketamine-nasal in US" in m for f, m in problems(ruleset))
    assert "**GAP**" in render_coverage(ruleset)
    assert all(cell(ruleset, fact, r, j).state != "GAP" for r, j in programs(ruleset) if r == "ketamine-iv")


def test_a_gap_reason_where_a_rule_names_the_fact_is_stale(tmp_path: Path):
    """A reason for "no rule here" where a rule does name the fact would contradict the page."""
    rules_dir = copy_rules(tmp_path)
    replace(
        rules_dir,
        "reference-facts.yaml",
        '  - id: INT_ERGOMETRINE\n    chapter: 3\n    title: "Ergometrine with ketamine"\n'
        "    routes: [ketamine-iv]",
        '  - id: INT_ERGOMETRINE\n    chapter: 3\n    title: "Ergometrine with ketamine"\n'
        "    routes: [ketamine-iv]\n    gaps:\n      - {jurisdictions: [US], why: A stale reason.}",
    )
    ruleset = load_ruleset(rules_dir)
    fact = next(f for f in ruleset.facts if f.id == "INT_ERGOMETRINE")

    assert [m for f, m in problems(ruleset) if f is fact] == [
        "INT_ERGOMETRINE gives a reason for no rule in ketamine-iv in US, ketamine-other in US, but rules "
        "there name it: "
        "remove the stale gap"
    ]


def test_a_rule_may_name_any_register_fact_but_no_unknown_id(tmp_path: Path):
    """KL018 accepts a register fact that is not a manifest concept, and rejects an unknown id."""
    rules_dir = copy_rules(tmp_path)
    replace(rules_dir, "interactions.yaml", "concepts: [INT_ERGOMETRINE]", "concepts: [INT_ERGOMETRIN]")

    with pytest.raises(RulesetError) as raised:
        load_ruleset(rules_dir)

    assert raised.value.code == "KL018"
    assert raised.value.suggestion == "INT_ERGOMETRINE"


def test_the_cli_writes_and_checks_the_page(tmp_path: Path):
    """`ketacds rules coverage --out FILE` writes the page; `--check` exits 1 when it is stale."""
    out = tmp_path / "coverage.md"
    runner = CliRunner()

    written = runner.invoke(main, ["rules", "coverage", str(RULES), "--out", str(out)])
    fresh = runner.invoke(main, ["rules", "coverage", str(RULES), "--out", str(out), "--check"])
    out.write_text("old\n", encoding="utf-8")
    stale = runner.invoke(main, ["rules", "coverage", str(RULES), "--out", str(out), "--check"])

    assert 0 == written.exit_code, written.output
    assert 0 == fresh.exit_code
    assert "up to date" in fresh.output
    assert 1 == stale.exit_code
    assert "stale" in stale.output
