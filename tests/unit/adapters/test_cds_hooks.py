"""Assessments as CDS Hooks cards, and the prefetch templates (no server needed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import attrs
import pytest

from ketacds import load_case_file
from ketacds.adapters.cds_hooks import (
    INDICATORS,
    CardContext,
    cards_for,
    error_card,
    prefetch_templates,
    render_template,
    truncate_summary,
)
from ketacds.models.quality import DataQualityIssue
from ketacds.server.models import CardsResponse
from support import EXAMPLES, card_context

ORDER = {
    "resourceType": "MedicationRequest",
    "id": "o1",
    "dosageInstruction": [
        {"doseQuantity": {"value": 112, "unit": "mg"}, "timing": {"repeat": {"frequency": 3}}}
    ],
}


def context(engine, hook: str = "patient-view", **fields: Any) -> CardContext:
    return card_context(engine.ruleset, hook, **fields)


def assess(engine, name: str):
    record, ctx = load_case_file(EXAMPLES / name)
    return engine.assess(record, ctx)


def cards(engine, name: str, hook: str = "patient-view", **fields: Any) -> list[dict[str, Any]]:
    return [r.card for r in cards_for(assess(engine, name), context(engine, hook, **fields))]


def test_absolute_contraindication_is_a_critical_card_first(engine):
    """Aortic aneurysm and esketamine: the first card is critical, with basis, evidence and a rule link."""
    first, *rest = cards(engine, "03-esketamine-aortic-aneurysm.yaml")

    assert ("critical", "Aneurysmal vascular disease (KCDS-CI-001)") == (first["indicator"], first["summary"])
    assert "**Because of (the inputs used):**" in first["detail"]
    assert "US-ESK-2019" in first["detail"]
    assert "https://cds.example.org/docs/rules/contraindications.md#kcds-ci-001" == first["links"][0]["url"]
    assert "critical" not in {c["indicator"] for c in rest}


def test_indicator_follows_the_status_level_of_the_severity(engine):
    """Each card's indicator is the table's value for its finding's status level."""
    for name in sorted(p.name for p in EXAMPLES.glob("*.yaml")):
        result = assess(engine, name)
        rendered = cards_for(result, context(engine))
        for r in rendered:
            if len(r.rule_ids) == 1 and r.card["summary"].endswith(f"({r.rule_ids[0]})"):
                finding = result.finding(r.rule_ids[0])
                level = dict(engine.ruleset.status.severities)[finding.severity]
                assert INDICATORS[level] == r.card["indicator"], (name, r.rule_ids)


def test_unknown_status_level_is_a_warning_never_info(engine):
    """A severity mapped to a level the table does not know gives a warning card."""
    status = attrs.evolve(
        engine.ruleset.status, severities=(*engine.ruleset.status.severities[:-1], ("caution", "brand-new"))
    )
    ruleset = attrs.evolve(engine.ruleset, status=status)
    result = assess(engine, "01-trd-esketamine-us.yaml")
    rendered = cards_for(result, attrs.evolve(context(engine), ruleset=ruleset))

    assert "warning" == next(r.card["indicator"] for r in rendered if r.rule_ids == ("KCDS-INT-001",))


def test_data_gaps_share_one_card(engine):
    """The incomplete IV record: one card lists weight, blood pressure, history and pregnancy status."""
    (gaps,) = [c for c in cards(engine, "05-iv-incomplete-record.yaml") if c["summary"].startswith("Missing")]

    assert (
        "Missing data could change the answer: weight, blood pressure, antidepressant treatment history, "
        "pregnancy status" == gaps["summary"]
    )
    assert 4 == len(gaps["links"])


def test_summary_card_has_dose_and_monitoring_but_not_at_order_sign(engine):
    """The info summary shows dose options and names the routine groups; order-sign leaves it out."""
    summary = cards(engine, "02-trd-iv-ketamine-obese.yaml")[-1]

    assert ("info", "IV ketamine: specialist-review (3 findings to review) — ketacds") == (
        summary["indicator"],
        summary["summary"],
    )
    assert "alternative (ideal body weight, Devine): 36.5 mg over 40 min" in summary["detail"]
    # Every IV monitoring item of this record is routine: on the group cards, named here.
    assert (
        "**Routine items for every patient on this route** (each group on its own card):"
        in (summary["detail"])
    )
    assert "- Routine monitoring at every session (5 items)" in summary["detail"]
    assert not [
        c
        for c in cards(engine, "02-trd-iv-ketamine-obese.yaml", "order-sign")
        if c["summary"].endswith("ketacds") or "Routine monitoring" in c["summary"]
    ]


def test_suggestion_updates_the_drafted_order(engine):
    """The stepped proposal becomes an update of the drafted MedicationRequest, in R4 doseAndRate."""
    rendered = cards(
        engine,
        "10-esketamine-order-above-maximum.yaml",
        "order-select",
        order_resource=ORDER,
        order_key="MedicationRequest/o1",
    )
    card = next(c for c in rendered if "KCDS-ORD-001" in c["summary"])
    resource = card["suggestions"][0]["actions"][0]["resource"]

    assert [
        {"doseQuantity": {"value": 84, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
    ] == resource["dosageInstruction"][0]["doseAndRate"]
    assert "doseQuantity" not in resource["dosageInstruction"][0]
    assert ORDER["dosageInstruction"][0]["doseQuantity"]["value"] == 112  # the draft itself is untouched
    assert "Assessed for the drafted order `MedicationRequest/o1`." in rendered[-1]["detail"]


def test_no_suggestion_without_a_drafted_order(engine):
    """Without the drafted resource (patient-view) there is nothing to update."""
    card = next(
        c for c in cards(engine, "10-esketamine-order-above-maximum.yaml") if "KCDS-ORD-001" in c["summary"]
    )

    assert "suggestions" not in card


def test_data_quality_card(engine):
    """Errors make a warning card listing them (record text escaped); warnings alone an info card."""
    result = assess(engine, "01-trd-esketamine-us.yaml")
    errors = [
        DataQualityIssue(
            severity="error", code="unknown-unit", message=f"unit '*{i}*'", resource=f"Observation/o{i}"
        )
        for i in range(40)
    ]
    with_errors = cards_for(
        attrs.evolve(
            result,
            data_quality=(*errors, DataQualityIssue(severity="info", code="not-read", message="Claim ×1")),
        ),
        context(engine),
    )
    warnings = cards_for(
        attrs.evolve(
            result, data_quality=(DataQualityIssue(severity="warning", code="deceased", message="deceased"),)
        ),
        context(engine),
    )

    (card,) = [r.card for r in with_errors if "could not be read" in r.card["summary"]]
    assert "warning" == card["indicator"]
    assert "unit '\\*0\\*'" in card["detail"]
    assert "… and 10 more" in card["detail"]
    assert "Left out by design:" in card["detail"]
    assert ["info"] == [r.card["indicator"] for r in warnings if "assumption" in r.card["summary"]]


def test_cards_fit_the_response_model(engine):
    """Every card of every example is a valid CDS Hooks card (summary under 140 characters)."""
    for name in sorted(p.name for p in EXAMPLES.glob("*.yaml")):
        CardsResponse.model_validate(
            {"cards": cards(engine, name, "order-select", order_resource=ORDER, order_key="x")}
        )


def test_error_card():
    """A card saying why no advice was given."""
    card = error_card(summary="x" * 200, detail="why", uuid=lambda: "u", source_label="ketacds")

    assert ("warning", 139) == (card["indicator"], len(card["summary"]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("short", "short"), ("word " * 40, ("word " * 27).strip() + "…"), ("a" * 150, "a" * 138 + "…")],
)
def test_truncate_summary(text, expected):
    """Summaries are cut below 140 characters, on a word where there is one."""
    assert expected == truncate_summary(text)
    assert len(truncate_summary(text)) < 140


def test_prefetch_templates_and_rendering():
    """Templates ask for the patient and what the rules read; tokens are filled and quoted."""
    templates = prefetch_templates(["8480-6", "29463-7"])
    context = {"patientId": "a b/c"}

    assert (
        "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7,http://loinc.org|8480-6&_sort=-date"
        == templates["observations"]
    )
    assert "MedicationStatement?patient={{context.patientId}}" == templates["medicationStatements"]
    assert "Patient/a%20b%2Fc" == render_template(templates["patient"], context, lambda t: quote(t, safe=""))
    assert render_template("Patient/{{context.userId}}", context, str) is None
    assert render_template("Patient/{{userPractitionerId}}", context, str) is None
    assert render_template("Patient/{{context.patientId", context, str) is None


def test_summary_card_shows_a_fixed_esketamine_dose_without_none(engine):
    """The summary card shows "56 mg" for a fixed esketamine dose, never "56 mg (None)" (issue 15 §10)."""
    summary = cards(engine, "01-trd-esketamine-us.yaml")[-1]

    assert "- induction day 1: 56 mg (KCDS-DOSE-008)" in summary["detail"]
    assert "None" not in summary["detail"]
