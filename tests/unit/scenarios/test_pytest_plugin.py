"""The pytest plugin: scenario files become test items; failures show the clinical diff at the YAML line."""

from __future__ import annotations

import pytest

from support import SCENARIO, SLICE_RULES

# The scenarios here assert exact outcomes of the frozen 0.1.0 rules.
RULES = ("--ketacds-rules", str(SLICE_RULES))


@pytest.fixture
def files(pytester: pytest.Pytester):
    """A passing scenario, a failing one (two in one file), a non-scenario YAML file."""
    body = SCENARIO.replace("\n", "\n    ").rstrip()
    wrong = body.replace("title: TRD, esketamine in the US", "title: Wrong status").replace(
        "status: no-concerns-found", "status: defer"
    )
    pytester.makefile(".scenario.yaml", good=SCENARIO)
    pytester.makefile(".scenario.yaml", pair=f"scenarios:\n  - {body}\n  - {wrong}\n")
    pytester.makefile(".yaml", other="not: collected\n")
    return pytester


def test_items_per_scenario_with_a_marker(files):
    """Each scenario is one item named by its title; only *.scenario.yaml files are collected."""
    result = files.runpytest("--collect-only", "-q", "-m", "scenario")

    result.stdout.fnmatch_lines(
        [
            "good.scenario.yaml::TRD, esketamine in the US",
            "pair.scenario.yaml::TRD, esketamine in the US",
            "pair.scenario.yaml::Wrong status",
        ]
    )
    assert "other.yaml" not in result.stdout.str()


def test_a_failure_shows_the_clinical_diff_and_the_yaml_line(files):
    """The failing scenario reports the diff, and its location is the scenario's line."""
    result = files.runpytest("-v", "-p", "no:cacheprovider", *RULES)

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*scenario: Wrong status*",
            "FAIL: Wrong status",
            "  Scenario: pair.scenario.yaml:17",
            "  ✗ Overall status  (line 29)",
            "      expected:    defer — *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_reportinfo_points_at_the_title_line(files):
    """An item's location is (file, 0-based line of its title, its title)."""
    items, _ = files.inline_genitems("pair.scenario.yaml")

    assert [
        ("pair.scenario.yaml", 1, "scenario: TRD, esketamine in the US"),
        ("pair.scenario.yaml", 16, "scenario: Wrong status"),
    ] == [item.location for item in items]


def test_a_bad_file_is_a_collection_error_naming_its_line(pytester: pytest.Pytester):
    """A misspelt key is reported as file:line and what is wrong, without a traceback."""
    pytester.makefile(".scenario.yaml", bad=SCENARIO.replace("findings:", "finding:"))
    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "bad scenario file: bad.scenario.yaml:14: expect.finding: "
            "unknown key 'finding' (did you mean 'findings'?)"
        ]
    )


def test_options_choose_the_engine_and_the_rules(pytester: pytest.Pytester):
    """--ketacds-backend reference runs the oracle; --ketacds-rules names a ruleset (here a broken one)."""
    pytester.makefile(".scenario.yaml", good=SCENARIO)
    (pytester.path / "norules").mkdir()

    pytester.runpytest("--ketacds-backend", "reference", "-p", "no:cacheprovider", *RULES).assert_outcomes(
        passed=1
    )
    broken = pytester.runpytest("--ketacds-rules", "norules", "-p", "no:cacheprovider")

    broken.assert_outcomes(failed=1)
    broken.stdout.fnmatch_lines(["*RulesetError*no manifest.yaml here*"])


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester):
    """-p no:ketacds disables collection of scenario files."""
    pytester.makefile(".scenario.yaml", good=SCENARIO)

    pytester.runpytest("-p", "no:ketacds", "-p", "no:cacheprovider").assert_outcomes()
