"""Text and Markdown reports: every part of the Assessment is shown."""

from __future__ import annotations

import pytest

from ketacds import load_case_file
from ketacds.reporting import render
from support import EXAMPLES


@pytest.fixture
def incomplete(engine):
    record, context = load_case_file(EXAMPLES / "05-iv-incomplete-record.yaml")
    return engine.assess(record, context)


@pytest.fixture
def obese(engine):
    record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")
    return engine.assess(record, context)


def test_text_shows_gaps_dose_monitoring_and_provenance(obese, incomplete):
    """The text report lists data gaps, both doses, monitoring and the ruleset digest."""
    text = render(obese, "text", title="Example")

    assert text.startswith("Example\n=======\nStatus: SPECIALIST-REVIEW")
    assert "standard (actual body weight): 54.4 mg over 40 min" in text
    assert "alternative (ideal body weight, Devine): 36.5 mg over 40 min" in text
    assert "Monitoring:" in text
    assert obese.provenance.digest[:16] in text
    assert "Data gaps (could change the answer):" in render(incomplete, "text")


def test_text_says_why_a_dose_is_missing(engine):
    """A dose option that cannot be computed says why."""
    import attrs

    record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")
    no_height = attrs.evolve(record, patient=attrs.evolve(record.patient, height=None))
    text = render(engine.assess(no_height, context), "text")

    assert "Dose:" in text
    assert "not calculated" not in text  # no BMI without height: the IBW option is not offered


def test_markdown_table_and_sections(obese, incomplete):
    """Markdown has the status, a findings table with evidence, and dose and monitoring lists."""
    md = render(obese, "markdown", title="Example")

    assert md.startswith("## Example\n\n**Status: specialist-review**")
    assert "| `KCDS-INT-002` | caution |" in md
    assert "### Dose" in md
    assert "### Monitoring" in md
    assert "### Data gaps" in render(incomplete, "markdown")


def test_json_render_is_the_assessment_json(obese):
    """The JSON format is the Assessment's own JSON."""
    assert obese.to_json(indent=2) + "\n" == render(obese, "json")


@pytest.fixture
def esketamine(engine):
    record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
    return engine.assess(record, context)


def test_fixed_esketamine_dose_in_text_has_no_none(esketamine):
    """A fixed esketamine dose has no weight basis: the text shows "56 mg", never "56 mg (None)".

    Issue 15 §10.
    """
    text = render(esketamine, "text")

    assert "induction day 1: 56 mg [KCDS-DOSE-008]" in text
    assert "None" not in text


def test_fixed_esketamine_dose_in_markdown_has_no_none(esketamine):
    """The same in Markdown (issue 15 §10)."""
    md = render(esketamine, "markdown")

    assert "- induction day 1: 56 mg (`KCDS-DOSE-008`)" in md
    assert "None" not in md
