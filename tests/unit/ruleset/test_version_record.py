"""The changelog habit: a version names one content, recorded in rulesets/versions.yaml and the CHANGELOG."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketacds.audit.history import RECORD_FILE, check, clinical_text, next_version, read_record
from ketacds.ruleset.load import load_ruleset
from rulesets_fixtures import RULES, copy_rules, replace, set_version
from support import ROOT

CHANGELOG = """# Changelog

## [Unreleased]

### Clinical

- Ruleset `ketacds-core` {version}, the first slice.

### Added

- Version 9.9.9 of a tool, which is not clinical.
"""


def test_the_bundled_rules_match_their_record_and_changelog():
    """The bundled rules' digest is the one recorded for their version, and CHANGELOG names it.

    When this fails, the message says what to do: a change to the rules needs a new version,
    a line in rulesets/versions.yaml and a Clinical entry in CHANGELOG.md.
    """
    problems = check(load_ruleset(RULES), RULES / RECORD_FILE, ROOT / "CHANGELOG.md")

    assert [] == problems, "\n".join(problems)


@pytest.fixture
def setup(tmp_path: Path):
    """A copy of the rules whose record and changelog agree with them."""
    rules_dir = copy_rules(tmp_path)
    ruleset = load_ruleset(rules_dir)
    (rules_dir / RECORD_FILE).write_text(f"{ruleset.name}:\n  {ruleset.version}: {ruleset.digest}\n")
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG.format(version=ruleset.version), encoding="utf-8")
    return rules_dir, changelog


def test_a_consistent_record_passes(setup):
    """Rules, record and changelog that agree have no problem."""
    rules_dir, changelog = setup

    assert [] == check(load_ruleset(rules_dir), rules_dir / RECORD_FILE, changelog)


def test_changed_rules_without_a_new_version_fail_with_instructions(setup):
    """Changing a threshold but not the version fails, saying to bump, record and describe."""
    rules_dir, changelog = setup
    replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
    ruleset = load_ruleset(rules_dir)

    (problem,) = check(ruleset, rules_dir / RECORD_FILE, changelog)

    assert "the rules of ketacds-core changed" in problem
    assert "Bump `version`" in problem
    assert f"`  {next_version(ruleset.version)}: {ruleset.digest}`" in problem
    assert "### Clinical" in problem


def test_a_new_version_needs_a_record_line_and_a_clinical_entry(setup):
    """A bumped version also needs its digest recorded and a Clinical entry naming it."""
    rules_dir, changelog = setup
    replace(rules_dir, "contraindications.yaml", "value: {gt: 140}", "value: {gt: 150}")
    old_version = set_version(rules_dir, "9.0.0")
    ruleset = load_ruleset(rules_dir)

    problems = check(ruleset, rules_dir / RECORD_FILE, changelog)

    assert 2 == len(problems)
    assert f"add the line `  9.0.0: {ruleset.digest}`" in problems[0]
    assert "names version 9.0.0" in problems[1]

    (rules_dir / RECORD_FILE).write_text(
        (rules_dir / RECORD_FILE).read_text() + f"  9.0.0: {ruleset.digest}\n", encoding="utf-8"
    )
    clinical = CHANGELOG.format(version=old_version)
    changelog.write_text(
        clinical.replace("the first slice.", "the first slice.\n- 9.0.0: KCDS-CI-004 at 150.")
    )

    assert [] == check(ruleset, rules_dir / RECORD_FILE, changelog)


def test_a_version_never_goes_back(setup):
    """A manifest version older than a recorded one is refused."""
    rules_dir, changelog = setup
    record = rules_dir / RECORD_FILE
    record.write_text(record.read_text() + "  99.0.0: abc\n", encoding="utf-8")
    changelog.write_text(changelog.read_text().replace("the first slice", "the first slice; 99.0.0"))

    (problem,) = check(load_ruleset(rules_dir), record, changelog)

    assert "older than the recorded 99.0.0" in problem


def test_only_clinical_sections_count():
    """A version named under Added, not Clinical, does not count."""
    text = clinical_text(CHANGELOG.format(version="0.1.0"))

    assert "0.1.0" in text
    assert "9.9.9" not in text


def test_next_version_bumps_the_patch():
    """0.1.0 becomes 0.1.1; a version without a numeric tail gets one."""
    assert ("0.1.1", "1.0.10", "1.0-rc.1") == (
        next_version("0.1.0"),
        next_version("1.0.9"),
        next_version("1.0-rc"),
    )


def test_the_record_file_must_be_mappings(tmp_path: Path):
    """A missing or empty record is empty; a malformed one is an error naming the file."""
    path = tmp_path / RECORD_FILE
    assert {} == read_record(path)
    path.write_text("")
    assert {} == read_record(path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected"):
        read_record(path)
    path.write_text("a: [\n")
    with pytest.raises(ValueError, match=RECORD_FILE):
        read_record(path)
