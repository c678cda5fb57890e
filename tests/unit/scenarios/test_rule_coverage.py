"""Rule coverage of scenarios: fired, near miss, never exercised."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketacds.scenarios import load_scenario_file, load_suite, measure_coverage
from ketacds.scenarios.coverage import REQUIRED_CONFIDENCES, near_miss_possible
from support import SCENARIOS, write_scenario


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


def test_the_project_suite_fires_every_r_and_s_rule(bundled_engine):
    """Every R and S rule of the bundled rules fires in some scenario of tests/scenarios."""
    scenarios, _ = load_suite([SCENARIOS])
    report = measure_coverage(bundled_engine, scenarios)

    assert (100.0, ()) == (report.percent(REQUIRED_CONFIDENCES), report.unfired(REQUIRED_CONFIDENCES))


def test_one_scenario_fires_some_rules_and_near_misses_others(tmp_path: Path, engine):
    """One esketamine case: its rules fire, IV rules are scope near misses, others are not exercised."""
    report = measure_coverage(engine, load_scenario_file(write_scenario(tmp_path)).scenarios)
    state = {r.rule_id: r.state for r in report.rules}

    assert "fired" == state["KCDS-CAND-002"]
    assert "near miss" == state["KCDS-CI-004"]  # 128/78: each alternative is one threshold short
    assert "near miss" == state["KCDS-DOSE-001"]  # an IV rule that would fire on these facts
    assert "not exercised" == state["KCDS-GAP-007"]  # the age is recorded: nothing near
    assert report.percent() < 100
    assert "KCDS-GAP-007" in {r.rule_id for r in report.unfired()}


def test_single_check_rules_that_apply_everywhere_cannot_be_near_missed(engine):
    """A rule of one check for every route and jurisdiction has no near miss, and the report says so."""
    rules = {rule.id: rule for rule in engine.ruleset.rules}

    # ketamine-intranasal is refused everywhere: no program there to near-miss in
    assert not near_miss_possible(rules["KCDS-GAP-007"], engine.ruleset)
    assert near_miss_possible(rules["KCDS-CI-004"], engine.ruleset)
    assert near_miss_possible(rules["KCDS-MON-002"], engine.ruleset)  # one check, but US only


def test_markdown_report(tmp_path: Path, engine):
    """The Markdown report has a summary and a row per rule, with where each fired."""
    path = write_scenario(tmp_path)
    text = measure_coverage(engine, load_scenario_file(path).scenarios).to_markdown()

    assert text.startswith("# Rule coverage: ketacds-core 0.1.0\n")
    assert (
        "| `KCDS-GAP-007` | R | Age not recorded | **not exercised** | — | — (cannot be near-missed) |"
        in text
    )
    assert (
        f"| `KCDS-CAND-002` | R | Treatment-resistant depression (esketamine indication) "
        f"| fired | `{path}:1` | — |" in text
    )
