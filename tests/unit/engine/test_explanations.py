"""Explanations a prescriber can act on (issue 15 item 10): each test failed on 0.4.0."""

from __future__ import annotations

import pytest

from ketacds import load_case
from ketacds.ruleset.describe import Describer
from ketacds.ruleset.load import load_ruleset
from rulesets_fixtures import RULES
from support import TRD

NOW = "2026-11-21T09:00:00Z"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset(RULES)


def assess(engine, route: str, jurisdiction: str = "US", **case):
    data = {
        "patient": {"birth_date": "1981-03-14", "sex": "female", "weight": "68 kg", "height": "165 cm"},
        "conditions": [{"code": {"system": "icd-10-cm", "code": "F33.2"}}],
        "trials": TRD,
        "context": {"route": route, "jurisdiction": jurisdiction, "now": NOW},
    }
    data.update(case)
    record, context = load_case(data)
    return engine.assess(record, context)


def finding(assessment, rule_id):
    (found,) = [f for f in assessment.findings if f.rule_id == rule_id]
    return found


BENZOS = [
    {"name": "clonazepam", "dose": 0.5, "unit": "mg", "frequency": "bid"},
    {"name": "lorazepam", "dose": 1, "unit": "mg", "frequency": "daily"},
]


@pytest.mark.parametrize(
    ("route", "rule_id"), [("ketamine-iv", "KCDS-INT-003"), ("esketamine-nasal", "KCDS-INT-004")]
)
def test_the_benzodiazepine_dose_finding_is_because_of_the_drugs_not_the_patient(engine, route, rule_id):
    basis = finding(assess(engine, route, medications=BENZOS), rule_id).basis
    assert [ref.type for ref in basis] == ["medication", "medication"]
    clonazepam, lorazepam = (ref.label for ref in basis)
    assert clonazepam.startswith("clonazepam 0.5 mg 2/day (active); 1 mg/day = 20 mg/day diazepam-equivalent")
    assert lorazepam.startswith("lorazepam 1 mg 1/day (active); 1 mg/day = 10 mg/day diazepam-equivalent")
    for label in (clonazepam, lorazepam):
        assert "Ashton table" in label
        assert "VA/DoD" in label
        assert "female" not in label


def test_a_finding_on_the_patient_itself_keeps_the_patient_as_its_basis(engine):
    # KCDS-MON-020 reads the patient fact (no table total): unchanged.
    basis = finding(assess(engine, "ketamine-iv", medications=BENZOS), "KCDS-MON-020").basis
    assert [ref.type for ref in basis] == ["patient"]


def test_the_benzodiazepine_total_reads_in_plain_english(ruleset):
    rule = next(r for r in ruleset.rules if r.id == "KCDS-INT-003")
    text = Describer(ruleset).sentence(rule.when)
    assert "total daily benzodiazepine dose as diazepam equivalent above 8 mg/day" in text
    assert "eq mg day" not in text


def test_the_predose_blood_pressure_deferral_says_its_time_window(ruleset):
    rule = next(r for r in ruleset.rules if r.id == "KCDS-CI-004")
    window = ruleset.validity.range_of("observation", "systolic-blood-pressure").current_hours
    assert f"last {window} hours" in rule.finding.message


@pytest.mark.parametrize(
    ("rule_id", "beyond_the_source"),
    [
        ("KCDS-CI-035", "until the eye is repaired"),
        ("KCDS-CI-025", "raises the risk of dependence (17%"),
    ],
)
def test_texts_say_only_what_their_source_says(ruleset, rule_id, beyond_the_source):
    rule = next(r for r in ruleset.rules if r.id == rule_id)
    text = f"{rule.finding.message} {rule.finding.management}"
    assert beyond_the_source not in text


def test_us_esketamine_output_carries_no_eu_management_text(engine):
    assessment = assess(
        engine,
        "esketamine-nasal",
        conditions=[
            {"code": {"system": "icd-10-cm", "code": "F33.2"}},
            {"code": {"system": "icd-10-cm", "code": "J44.9"}},
        ],
    )
    respiratory = finding(assessment, "KCDS-CI-038")
    for text in (respiratory.message, respiratory.management or ""):
        assert "EU" not in text, text
    # The EU setting requirement stays, in EU output only (KCDS-MON-008).
    assert "KCDS-MON-008" not in {f.rule_id for f in assessment.findings}


def test_every_source_register_document_exists(ruleset):
    import re

    root = RULES.parent
    for source in ruleset.sources:
        for path in re.findall(r"\bdocs/[\w./-]+\.md", source.title):
            assert (root / path).is_file(), (source.id, path)
