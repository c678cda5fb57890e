"""Recognition: every condition, medication, substance, allergy, trial and observation is
read by a value set a rule reads (or a ``known`` list), or reported in data quality."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs
import pytest

from ketacds import Context, load_record
from ketacds.models.inputs import Order

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
CONTEXT = Context(route="esketamine-nasal", jurisdiction="US", now=NOW)


def quality(engine, **items):
    """The recognition issues fact building reports for a record with these items."""
    record = load_record({"patient": {"age_years": 40}, **items})
    return [(i.severity, i.code, i.path) for i in engine.facts(record, CONTEXT).quality]


def facts_of(engine, kind, **items):
    record = load_record({"patient": {"age_years": 40}, **items})
    return [f for f in engine.facts(record, CONTEXT).facts if f["t"] == kind]


@pytest.mark.parametrize(
    ("medication", "expected"),
    [
        ({"name": "examplamab 10 mg"}, [("error", "unrecognised-medication", "medications")]),
        (
            {"name": "examplamab", "status": "stopped"},
            [("info", "unrecognised-medication", "medications")],
        ),
        ({"name": "clonazepam tablet 2 mg bid"}, []),  # read by its words
        ({"name": "Paracetamol 500 mg"}, []),  # known, no rule needs it
        ({"name": "amlodipine 5 mg"}, []),  # a known antihypertensive (a rule reads it)
        (
            {"name": "Acetaminophen 325 MG / Examplamab 5 MG Oral Tablet"},
            [("error", "unrecognised-medication", "medications")],
        ),
        ({"name": "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet"}, []),
        ({"name": "Examplamab and acetaminophen"}, [("error", "unrecognised-medication", "medications")]),
        ({"name": "tramadol + paracetamol"}, []),
        ({"name": "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML"}, []),
        # A strength's "mg/mL" is not a combination: "mL eye drops" is no ingredient.
        ({"name": "Lumigan 0.1 mg/mL eye drops"}, []),
        ({"name": "fentanyl 25 mcg/hr patch"}, []),
        # ... while a real second ingredient after a ratio is still checked.
        (
            {"name": "Timolol 5 MG/ML / Examplamab 20 MG/ML Ophthalmic Solution"},
            [("error", "unrecognised-medication", "medications")],
        ),
    ],
)
def test_medications(engine, medication, expected):
    """An unread active medication is an error (never reassuring); an inactive one is listed."""
    assert expected == quality(engine, medications=[medication])


_LINEZOLID = [("error", "unrecognised-medication", "medications")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # A known drug never vouches for an unknown one, whatever separates them.
        ("sertraline, linezolid", _LINEZOLID),
        ("sertraline; linezolid", _LINEZOLID),
        ("sertraline with linezolid", _LINEZOLID),
        ("sertraline - linezolid", _LINEZOLID),
        ("sertraline \u2013 linezolid", _LINEZOLID),
        ("sertraline (linezolid)", _LINEZOLID),
        ("sertraline\nlinezolid", _LINEZOLID),
        ("Sertraline 50 MG Oral Tablet, linezolid 600 mg", _LINEZOLID),
        # A mineral is a medicine of its own, not a salt word.
        ("sertraline; magnesium sulfate 4 g", _LINEZOLID),
        # Strength, dose form, route, release, salt and packaging parts are no ingredients.
        ("Sertraline 50 MG Oral Tablet", []),
        ("sertraline 50 mg tablet, oral", []),
        ("sertraline (as hydrochloride) 50 mg", []),
        ("sertraline 2,5 mg", []),
        ("sertraline 50 mg - 100 mg", []),
        ("24 HR Venlafaxine 75 MG Extended Release Oral Capsule", []),
        ("venlafaxine (extended release), oral capsule", []),
        ("Klonopin (clonazepam) 0.5 mg tablet", []),
        ("Xalatan 0.005% ophthalmic solution, 1 drop each eye at night", []),
    ],
)
def test_a_known_drug_never_vouches_for_another(engine, name, expected):
    """A medication name listing drugs is read part by part: every part naming a drug must be read."""
    assert expected == quality(engine, medications=[{"name": name}])


def test_the_synthea_medication_names_read_as_before(engine):
    """Every MedicationRequest display of the Synthea sample bundles reads as before the wider
    separators: no strength, form or salt part became an unknown ingredient. Only the two
    combination products with an ingredient no value set lists are reported, naming it."""
    import json
    from pathlib import Path

    displays = set()
    for bundle in sorted(Path(__file__).parents[2].joinpath("data", "fhir").glob("*.json")):
        for entry in json.loads(bundle.read_text(encoding="utf-8")).get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] == "MedicationRequest":
                concept = resource.get("medicationCodeableConcept", {})
                displays |= {c["display"] for c in concept.get("coding", []) if c.get("display")}
    assert len(displays) >= 30
    terminology = engine.terminology
    unread_parts = {}
    for display in sorted(displays):
        if not terminology.is_read(terminology.tag_text(None, display), "medication"):
            continue  # unread as a whole: reported as before, whatever its parts
        record = load_record({"patient": {"age_years": 40}, "medications": [{"name": display}]})
        for issue in engine.facts(record, CONTEXT).quality:
            unread_parts[display] = issue.message.split(": ", 1)[1].split(" is in no value set")[0]
    assert {
        "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate "
        "0.417 MG/ML Oral Solution": "'doxylamine succinate 0.417 MG per ML Oral Solution'",
        "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet": "'Clavulanate 125 MG Oral Tablet'",
    } == unread_parts


def test_the_message_names_the_item(engine):
    """The data-quality message names the code or name it could not read, and why."""
    record = load_record({"patient": {"age_years": 40}, "medications": [{"name": "examplamab 10 mg"}]})
    (issue,) = engine.facts(record, CONTEXT).quality
    assert "'examplamab 10 mg'" in issue.message
    assert "no value set the rules read" in issue.message


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"code": {"system": "snomed", "code": "401314000"}}, []),  # NSTEMI: read
        (
            {"code": {"system": "snomed", "code": "999999999", "display": "Old NSTEMI"}},
            [("error", "unrecognised-condition", "conditions")],
        ),
        (
            {"name": "thoracic aortic aneurysm repaired 2010"},
            [("error", "unrecognised-condition", "conditions")],
        ),
        ({"name": "ingrown toenail"}, [("warning", "unrecognised-condition", "conditions")]),
        (
            {"name": "ingrown toenail", "clinical_status": "resolved"},
            [("info", "unrecognised-condition", "conditions")],
        ),
        ({"code": {"system": "snomed", "code": "271737000"}}, []),  # anaemia: known, no rule needs it
    ],
)
def test_conditions(engine, condition, expected):
    """An unread active condition whose text names a concept a rule reads is an error; others listed."""
    assert expected == quality(engine, conditions=[condition])


@pytest.mark.parametrize(
    ("use", "expected"),
    [
        ({"name": "cocaine", "status": "current"}, []),  # in substances-of-misuse; see below
        (
            {"name": "khat chewing", "status": "current"},
            [("error", "unrecognised-substance", "substance_use")],
        ),
        (
            {"name": "khat chewing", "status": "former"},
            [("warning", "unrecognised-substance", "substance_use")],
        ),
        ({"name": "alcohol", "status": "current"}, []),
    ],
)
def test_substances(engine, use, expected):
    """Current substance use nobody reads is an error, former a warning."""
    found = quality(engine, substance_use=[use])
    if use["name"] == "cocaine" and not engine.terminology.is_read(("substances-of-misuse",)):
        # Until a rule reads substances-of-misuse, current cocaine use is reported, never silent.
        expected = [("error", "unrecognised-substance", "substance_use")]
    assert expected == found


def test_substances_of_misuse_are_tagged(engine):
    """Cocaine and other substances of misuse are tagged, for the rules that read them."""
    (fact,) = facts_of(engine, "substance", substance_use=[{"name": "crack cocaine", "status": "current"}])
    assert "substances-of-misuse" in fact["vs"]


def test_trials_count_distinct_ingredients(engine):
    """Brand and generic are one drug; a non-antidepressant is listed as not counted."""
    trials = facts_of(
        engine,
        "trial",
        trials=[
            {"name": "Zoloft", "response": "none"},
            {"name": "sertraline 100 mg tablet", "response": "none"},
            {"name": "Lexapro", "response": "none"},
        ],
    )
    assert ["ingredient:escitalopram", "ingredient:sertraline", "ingredient:sertraline"] == sorted(
        t["drug"] for t in trials
    )
    assert [("info", "unrecognised-trial", "trials")] == quality(
        engine, trials=[{"name": "CBT", "response": "none"}]
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # One combination written in another order, with "and", or with brands.
        ({"name": "escitalopram + bupropion"}, {"name": "bupropion and escitalopram"}),
        ({"name": "escitalopram and bupropion"}, {"name": "Lexapro and Wellbutrin"}),
        ({"name": "Lexapro 20 mg / Wellbutrin XL 300 mg"}, {"name": "bupropion, escitalopram"}),
        # A name and an ATC code whose display names the ingredient (ATC N06AB10 is listed
        # among the SSRIs, the ingredient among the oral antidepressants).
        ({"name": "escitalopram"}, {"code": {"system": "atc", "code": "N06AB10"}}),
        ({"name": "Effexor"}, {"code": {"system": "atc", "code": "N06AX16"}}),
    ],
)
def test_one_drug_written_two_ways_is_one_drug(engine, first, second):
    """The trials' drug key (which KCDS-CAND-001 compares) does not depend on how a drug is written."""
    trials = facts_of(engine, "trial", trials=[{**first, "response": "none"}, {**second, "response": "none"}])
    assert len(trials) == 2
    assert trials[0]["drug"] == trials[1]["drug"]


def test_a_combination_is_its_ingredients(engine):
    """A combination's key is its antidepressants' ingredients, sorted; other parts are left out.

    Lithium, olanzapine or an unknown foozapine beside an antidepressant never make it
    another drug (the rules count only antidepressants).
    """
    trials = facts_of(
        engine,
        "trial",
        trials=[
            {"name": "Wellbutrin + Lexapro", "response": "none"},
            {"name": "escitalopram", "response": "none"},
            {"name": "Zoloft (sertraline)", "response": "none"},  # one ingredient, twice
            {"name": "escitalopram + Foozapine 10 mg", "response": "none"},
            {"name": "lithium + sertraline", "response": "none"},
            {"name": "olanzapine/fluoxetine", "response": "none"},
        ],
    )
    assert [
        "ingredient:escitalopram",
        "ingredient:escitalopram",
        "ingredient:fluoxetine",
        "ingredient:sertraline",
        "ingredient:sertraline",
        "ingredients:bupropion+escitalopram",
    ] == sorted(t["drug"] for t in trials)


def test_an_unread_part_of_a_combination_trial_is_reported(engine):
    """``escitalopram + foozapine`` is counted by its escitalopram, and foozapine is reported."""
    record = load_record(
        {"patient": {"age_years": 40}, "trials": [{"name": "escitalopram + foozapine", "response": "none"}]}
    )
    (issue,) = engine.facts(record, CONTEXT).quality
    assert ("warning", "unrecognised-trial", "trials") == (issue.severity, issue.code, issue.path)
    assert "'foozapine'" in issue.message
    assert [] == quality(engine, trials=[{"name": "escitalopram + bupropion", "response": "none"}])


def test_an_unread_coded_trial_is_a_warning(engine):
    """A coded trial no value set reads (RxNorm 39786, venlafaxine) may be an antidepressant: a warning."""
    coded = {"code": {"system": "rxnorm", "code": "39786"}, "response": "partial"}
    assert [("warning", "unrecognised-trial", "trials")] == quality(engine, trials=[coded])
    # Free text that is no antidepressant stays info; an ATC code the value sets read is seen.
    named = {"name": "CBT", "response": "none"}
    assert [("info", "unrecognised-trial", "trials")] == quality(engine, trials=[named])
    assert [] == quality(engine, trials=[{"code": {"system": "atc", "code": "N06AB10"}, "response": "none"}])
    # Counted by its ATC prefix (N06AA), but tied to no ingredient: maybe another trial's drug.
    by_prefix = {"code": {"system": "atc", "code": "N06AA09"}, "response": "none"}
    assert [("warning", "unrecognised-trial", "trials")] == quality(engine, trials=[by_prefix])
    (fact,) = facts_of(engine, "trial", trials=[by_prefix])
    assert "oral-antidepressants" in fact["vs"]


def test_a_medication_is_not_read_by_a_condition_value_set(engine):
    """Membership counts per fact type: 'Migraine relief' names a known condition, not a medication."""
    assert [("error", "unrecognised-medication", "medications")] == quality(
        engine, medications=[{"name": "Migraine relief 10 mg"}]
    )


def test_allergies_and_observations_are_listed(engine):
    """An unread active allergy is a warning; an unread observation is info."""
    assert [("warning", "unrecognised-allergy", "allergies")] == quality(
        engine, allergies=[{"name": "shellfish"}]
    )
    assert [] == quality(engine, allergies=[{"name": "ketamine hydrochloride"}])
    known = {"name": "heart rate", "value": 70, "unit": "/min", "time": NOW.isoformat()}
    assert [] == quality(engine, observations=[known])
    assert [("info", "unrecognised-observation", "observations")] == quality(
        engine, observations=[{"name": "waist circumference", "value": 90, "unit": "cm"}]
    )


def test_an_entry_names_its_item_not_its_position(engine):
    """The entry names the item by its id (given or from its content), so order never matters."""
    items = [{"name": "examplamab"}, {"id": "m2", "name": "otheramab"}]
    first = load_record({"patient": {"age_years": 40}, "medications": items})
    second = load_record({"patient": {"age_years": 40}, "medications": items[::-1]})
    issues = engine.facts(first, CONTEXT).quality

    assert sorted(issues, key=repr) == sorted(engine.facts(second, CONTEXT).quality, key=repr)
    assert {"Medication/m2"} < {i.resource for i in issues}
    assert all(i.path == "medications" for i in issues)


def test_an_order_for_a_drug_nobody_reads_is_an_error(engine):
    """An ordered drug the order rules cannot read is loud: its dose would go unchecked."""
    record = load_record({"patient": {"age_years": 40}})
    for name, expected in [
        ("Ketamine hydrochloride 50 MG/ML Injectable Solution", []),
        ("examplamine 50 mg", [("error", "unrecognised-order", "context.order")]),
    ]:
        context = Context(
            route="ketamine-iv",
            jurisdiction="US",
            now=NOW,
            order=Order(name=name, dose=Decimal(35), unit="mg"),
        )
        assert expected == [(i.severity, i.code, i.path) for i in engine.facts(record, context).quality]


# -- through the FHIR reader ------------------------------------------------------------

_PATIENT = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-01", "gender": "female"}
_SUBJECT = {"reference": "Patient/p1"}


def _med(display: str, code: str = "999999991") -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": _SUBJECT,
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}
            ],
            "text": display,
        },
    }


@pytest.mark.parametrize(
    ("display", "valueset"),
    [
        ("Clonazepam [Klonopin]", "benzodiazepines"),
        ("Diazepam [Valium]", "benzodiazepines"),
        ("Oxycodone Hydrochloride 5 MG Oral Tablet", "opioids"),
        ("amlodipine 5 MG Oral Tablet", "antihypertensives"),
        ("Verapamil Hydrochloride 80 MG Oral Tablet", "antihypertensives"),
        ("Warfarin Sodium 5 MG Oral Tablet", "known-medications-no-rule"),
        ("Digoxin 0.125 MG Oral Tablet", "known-medications-no-rule"),
        ("Clopidogrel 75 MG Oral Tablet", "clopidogrel"),
    ],
)
def test_synthea_style_medications_are_read_by_name(engine, display, valueset):
    """Products missing from the RxNorm table are read by the words of their display (issue 14)."""
    from ketacds.adapters.fhir import read_resources

    record = read_resources([_PATIENT, _med(display)], terminology=engine.terminology)
    facts = engine.facts(record, CONTEXT)
    (medication,) = [f for f in facts.facts if f["t"] == "medication"]

    assert valueset in medication["vs"]
    assert not [i for i in (*record.data_quality, *facts.quality) if i.severity == "error"]


def test_an_unknown_fhir_medication_is_one_error_naming_it(engine):
    """From FHIR, the reader's unmapped-medication names the product; fact building adds no duplicate."""
    from ketacds.adapters.fhir import read_resources

    record = read_resources([_PATIENT, _med("Examplamab 10 MG Oral Tablet")], terminology=engine.terminology)
    facts = engine.facts(record, CONTEXT)
    errors = [i for i in (*record.data_quality, *facts.quality) if i.severity == "error"]

    assert ["unmapped-medication"] == [i.code for i in errors]
    assert "Examplamab 10 MG Oral Tablet" in errors[0].message
    assert "RxNorm 999999991" in errors[0].message


def test_a_fhir_nstemi_four_weeks_ago_contraindicates_eu_esketamine(engine):
    """A SNOMED CT NSTEMI condition in a FHIR record, 4 weeks before: KCDS-CI-009 (EU)."""
    from ketacds.adapters.fhir import read_resources

    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "401314000"}]},
        "onsetDateTime": "2026-10-24",
        "subject": _SUBJECT,
    }
    record = read_resources([_PATIENT, condition], terminology=engine.terminology)
    result = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="EU", now=NOW))

    assert "contraindicated" == result.status
    assert "KCDS-CI-009" in {f.rule_id for f in result.findings}


def test_a_fhir_condition_coded_twice_is_seen_when_one_code_is_read(engine):
    """ICD-10-CM F33.2 beside a SNOMED CT code no value set lists: one condition, read, not reported."""
    from ketacds.adapters.fhir import read_resources

    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {
            "coding": [
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.2"},
                {
                    "system": "http://snomed.info/sct",
                    "code": "999999999",
                    "display": "Recurrent major depression",
                },
            ]
        },
        "subject": _SUBJECT,
    }
    record = read_resources([_PATIENT, condition], terminology=engine.terminology)

    assert 2 == len(record.conditions)
    assert [] == [i for i in engine.facts(record, CONTEXT).quality if i.code == "unrecognised-condition"]


@pytest.mark.parametrize(
    ("ends", "message"),
    [
        ('from: "I22"\n    to: "I21"', "run upwards"),
        ('from: "I21"\n    to: "I22.9"', "same length"),
    ],
)
def test_a_malformed_range_is_refused_with_its_line(tmp_path, ends, message):
    """A code range whose ends are reversed or of different lengths is a RulesetError naming the file."""
    from ketacds import load_ruleset
    from ketacds.errors import RulesetError
    from rulesets_fixtures import copy_rules

    rules = copy_rules(tmp_path)
    path = rules / "valuesets" / "acute-cardiovascular-events.yaml"
    text = path.read_text()
    path.write_text(text.replace('from: "I21"\n    to: "I22"', ends, 1))
    with pytest.raises(RulesetError, match=message) as raised:
        load_ruleset(rules)
    assert "acute-cardiovascular-events.yaml" in str(raised.value)


_BP_READ = {
    "name": "blood pressure",
    "time": "2026-11-21T08:10:00Z",
    "components": [
        {"code": {"system": "loinc", "code": "8480-6"}, "value": 136, "unit": "mm[Hg]"},
        {"code": {"system": "loinc", "code": "8462-4"}, "value": 84, "unit": "mm[Hg]"},
    ],
}


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        # A blood pressure the rules cannot read: its value alone, or components they do not know.
        (
            {"name": "blood pressure", "value": 182, "unit": "mmHg", "time": "2026-11-21T08:50:00Z"},
            [("error", "unrecognised-observation", "observations")],
        ),
        (
            {
                "name": "blood pressure",
                "time": "2026-11-21T08:50:00Z",
                "components": [
                    {"name": "sys", "value": 182, "unit": "mmHg"},
                    {"name": "dia", "value": 112, "unit": "mmHg"},
                ],
            },
            [("error", "unrecognised-observation", "observations")] * 2,
        ),
        # Its own text names a concept a rule reads.
        (
            {"name": "systolic pressure (sitting)", "value": 182, "unit": "mmHg"},
            [("error", "unrecognised-observation", "observations")],
        ),
        (
            {
                "code": {"system": "loinc", "code": "99999-9", "display": "Blood pressure, systolic"},
                "value": 1,
            },
            [("error", "unrecognised-observation", "observations")],
        ),
        # Names nothing a rule reads: listed.
        (
            {"name": "vitals", "components": [{"name": "sys", "value": 182, "unit": "mmHg"}]},
            [("info", "unrecognised-observation", "observations")],
        ),
        (
            {"name": "intraocular pressure", "value": 30, "unit": "mmHg"},
            [("info", "unrecognised-observation", "observations")],
        ),
        # Read components of a "blood pressure" observation: nothing to report.
        (
            {
                "name": "blood pressure",
                "time": "2026-11-21T08:50:00Z",
                "components": [
                    {"name": "systolic", "value": 124, "unit": "mmHg"},
                    {"name": "diastolic", "value": 78, "unit": "mmHg"},
                ],
            },
            [],
        ),
    ],
)
def test_an_unreadable_reading_of_a_kind_the_rules_read_is_an_error(engine, observation, expected):
    """A reading whose text names a concept rules read on observations, unread, could change the answer."""
    assert expected == quality(engine, observations=[observation])


@pytest.mark.parametrize(
    "newer",
    [
        {"name": "blood pressure", "value": 182, "unit": "mmHg", "time": "2026-11-21T08:50:00Z"},
        {
            "name": "blood pressure",
            "time": "2026-11-21T08:50:00Z",
            "components": [
                {"name": "sys", "value": 182, "unit": "mmHg"},
                {"name": "dia", "value": 112, "unit": "mmHg"},
            ],
        },
    ],
)
def test_an_older_normal_blood_pressure_does_not_reassure_past_an_unreadable_newer_one(engine, newer):
    """The read 136/84 is not taken as current when a newer blood pressure cannot be read."""
    record = load_record(
        {
            "patient": {"age_years": 40, "sex": "female", "weight": "68 kg", "height": "165 cm"},
            "conditions": [{"code": {"system": "icd-10-cm", "code": "F33.2"}}],
            "observations": [_BP_READ, newer],
        }
    )
    assessment = engine.assess(record, CONTEXT)
    assert assessment.status == "incomplete"
    assert "KCDS-GAP-013" in {f.rule_id for f in assessment.findings}


_KETAMINE_UNKNOWN_CODE = {
    "system": "http://snomed.info/sct",
    "code": "999999",
    "display": "Ketamine (substance)",
}


def test_an_unread_allergy_naming_a_drug_an_allergy_rule_reads_is_an_error(engine):
    """An active allergy coded unknown, whose display names ketamine, may be the contraindication."""
    assert [("error", "unrecognised-allergy", "allergies")] == quality(
        engine, allergies=[{"code": _KETAMINE_UNKNOWN_CODE}]
    )
    inactive = {"code": _KETAMINE_UNKNOWN_CODE, "status": "resolved"}
    assert [("info", "unrecognised-allergy", "allergies")] == quality(engine, allergies=[inactive])
    assert [("warning", "unrecognised-allergy", "allergies")] == quality(
        engine, allergies=[{"code": {**_KETAMINE_UNKNOWN_CODE, "display": "Shellfish (substance)"}}]
    )


def test_a_fhir_allergy_with_an_unknown_code_naming_ketamine_is_never_reassuring(engine):
    """From FHIR: AllergyIntolerance SNOMED 999999 'Ketamine (substance)' is an error, so not reassuring."""
    from ketacds.adapters.fhir import read_resources

    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "patient": _SUBJECT,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [_KETAMINE_UNKNOWN_CODE]},
    }
    record = read_resources([_PATIENT, allergy], terminology=engine.terminology)
    facts = engine.facts(record, CONTEXT)
    assert [("error", "unrecognised-allergy")] == [(i.severity, i.code) for i in facts.quality]
    assert "Ketamine (substance)" in facts.quality[0].message
    assert engine.assess(record, CONTEXT).status not in ("cautions", "no-concerns-found")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # Named only by the code displays of a value set a rule reads (no name lists it).
        ({"name": "basal ganglia hemorrhage"}, "error"),
        (
            {
                "code": {
                    "system": "snomed",
                    "code": "999999",
                    "display": "Basal ganglia hemorrhage (disorder)",
                },
            },
            "error",
        ),
        ({"name": "basal ganglia hemorrhage", "clinical_status": "resolved"}, "info"),
        ({"name": "acute bronchitis"}, "warning"),
        ({"name": "hemorrhage"}, "warning"),  # one word is never taken for a longer display
    ],
)
def test_a_condition_described_by_a_code_display_the_rules_read_is_an_error(engine, condition, expected):
    """Text naming a concept through its value set's code displays escalates; it never fires a rule."""
    assert [(expected, "unrecognised-condition", "conditions")] == quality(engine, conditions=[condition])
    record = load_record({"patient": {"age_years": 40}, "conditions": [condition]})
    assert not [f for f in engine.assess(record, CONTEXT).findings if f.rule_id.startswith("KCDS-CI-")]


def test_the_synthea_conditions_nobody_reads_stay_warnings(engine):
    """No unread condition of the Synthea sample bundles is escalated by the code displays.

    (The deceased patients are read as alive, so that their records are looked at too.)
    """
    import json
    from pathlib import Path

    from ketacds.adapters.fhir import read_bundle

    escalated = []
    for path in sorted(Path(__file__).parents[2].joinpath("data", "fhir").glob("*.json")):
        record = read_bundle(json.loads(path.read_text(encoding="utf-8")), terminology=engine.terminology)
        record = attrs.evolve(record, patient=attrs.evolve(record.patient, deceased=False))
        for issue in engine.facts(record, CONTEXT).quality:
            if issue.code == "unrecognised-condition" and issue.severity == "error":
                escalated.append(issue.message)
    # Only "Drug overdose", which names substance use by a synonym (as before).
    assert ["Drug overdose"] == sorted({message.split("'")[1] for message in escalated})
