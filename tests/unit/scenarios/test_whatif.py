"""What-if: the edit language, applied to a case, and what changed in the Assessment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ketacds import InputError, Quantity, load_case_file
from ketacds.scenarios import apply_edits, compare_assessments, parse_edit
from support import EXAMPLES


@pytest.fixture
def engine(slice_engine):
    """These tests assert exact rule content: they run on the frozen 0.1.0 rules."""
    return slice_engine


@pytest.fixture
def case():
    return load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")


def edited(engine, case, *edits: tuple[str, str, str]):
    record, context = case
    titles = {vs.id: vs.title for vs in engine.ruleset.valuesets}
    return apply_edits(
        record,
        context,
        [parse_edit(*e) for e in edits],
        terminology=engine.terminology,
        valueset_titles=titles,
    )


def changes(engine, case, *edits: tuple[str, str, str]) -> list[str]:
    before = engine.assess(*case)
    return compare_assessments(before, engine.assess(*edited(engine, case, *edits))).lines()


class TestSet:
    def test_patient_fields_are_read_as_in_a_patient_file(self, engine, case):
        """weight=120kg, pregnant=true, hepatic_class=B: parsed by the input loader."""
        record, _ = edited(
            engine,
            case,
            ("set", "", "weight=120kg"),
            ("set", "", "pregnant=true"),
            ("set", "", "hepatic_class=B"),
        )

        assert (Quantity(value=Decimal(120), unit="kg"), True, "B") == (
            record.patient.weight,
            record.patient.pregnant,
            record.patient.hepatic_class,
        )

    def test_age_and_birth_date_replace_each_other(self, engine, case):
        """Setting the age forgets the birth date; setting the birth date forgets the age."""
        by_age, _ = edited(engine, case, ("set", "", "age=70"))
        by_date, _ = edited(engine, case, ("set", "", "age=70"), ("set", "", "birth_date=1950-01-01"))

        assert (70, None) == (by_age.patient.age_years, by_age.patient.birth_date)
        assert (None, dt.date(1950, 1, 1)) == (by_date.patient.age_years, by_date.patient.birth_date)

    def test_an_empty_value_makes_a_field_unknown(self, engine, case):
        """`weight=` removes the weight (to see which rules need it)."""
        record, _ = edited(engine, case, ("set", "", "weight="))

        assert record.patient.weight is None

    def test_context_fields(self, engine, case):
        """route, jurisdiction, now and setting are context fields."""
        _, context = edited(engine, case, ("set", "", "route=ketamine-iv"), ("set", "", "jurisdiction=eu"))

        assert ("ketamine-iv", "EU") == (context.route, context.jurisdiction)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("wieght=3kg", "--set wieght=3kg: unknown field 'wieght' (did you mean 'weight'?)"),
            ("weight=3 stone", "--set weight=3 stone: unknown unit 'stone'"),
            ("route=oral", "--set route=oral: expected one of ketamine-iv, esketamine-nasal, ketamine-other"),
            ("now=2026-01-01T00:00", "--set now=2026-01-01T00:00: must include a timezone"),
        ],
    )
    def test_bad_values_name_the_edit(self, engine, case, text, message):
        """A value the loader refuses is an InputError naming the edit."""
        with pytest.raises(InputError) as caught:
            edited(engine, case, ("set", "", text))

        assert str(caught.value).startswith(message)

    def test_set_needs_an_equals_sign(self):
        """`--set weight` without a value is refused before anything runs."""
        with pytest.raises(InputError, match="expected FIELD=VALUE"):
            parse_edit("set", "", "weight")


class TestAddRemove:
    def test_add_a_medication_by_shorthand_or_mapping(self, engine, case):
        """`clonazepam 0.5 mg bid`, `rxnorm:2598`, or a mapping in the patient-file shape."""
        record, _ = edited(
            engine,
            case,
            ("add", "med", "clonazepam 0.5 mg bid"),
            ("add", "med", "rxnorm:2598"),
            ("add", "med", "{name: diazepam, dose: 5, unit: mg, as_needed: true}"),
        )
        added = record.medications[-3:]

        assert ("clonazepam", Decimal("0.5"), "mg", Decimal(2)) == (
            added[0].name,
            added[0].dose,
            added[0].unit,
            added[0].frequency_per_day,
        )
        assert ("http://www.nlm.nih.gov/research/umls/rxnorm", "2598") == (
            added[1].code.system,
            added[1].code.code,
        )
        assert (True, "diazepam") == (added[2].as_needed, added[2].name)

    def test_add_an_observation_timed_now(self, engine, case):
        """`systolic=150 mmHg` becomes the latest reading, so the blood-pressure rule defers."""
        assert [
            "Status: cautions → defer",
            "+ KCDS-CI-004 Pre-dose blood pressure above 140/90 mmHg [defer]",
        ] == changes(engine, case, ("add", "observation", "systolic=150 mmHg"))

    def test_add_a_condition_and_a_trial(self, engine, case):
        """A condition by code, a trial by name."""
        record, _ = edited(
            engine, case, ("add", "condition", "icd-10-cm:I71.40"), ("add", "trial", "bupropion")
        )

        assert ("I71.40", "bupropion") == (record.conditions[-1].code.code, record.trials[-1].name)

    def test_remove_by_name_code_display_or_value_set(self, engine, case):
        """Klonopin by brand name, F33.2 by code, all benzodiazepines by value set."""
        by_name, _ = edited(engine, case, ("remove", "med", "klonopin"))
        by_set, _ = edited(engine, case, ("remove", "med", "Benzodiazepines"))
        by_code, _ = edited(engine, case, ("remove", "condition", "icd-10-cm:F33.2"))
        by_bare_code, _ = edited(engine, case, ("remove", "condition", "f33.2"))
        by_component, _ = edited(engine, case, ("remove", "observation", "loinc:8480-6"))

        assert ["sertraline"] == [m.name for m in by_name.medications] == [m.name for m in by_set.medications]
        assert () == by_code.conditions == by_bare_code.conditions == by_component.observations

    def test_removing_what_is_not_there_lists_what_is(self, engine, case):
        """An edit that matches nothing is an error, never silently ignored."""
        with pytest.raises(InputError, match="nothing matches; recorded medications: sertraline, Klonopin"):
            edited(engine, case, ("remove", "med", "aspirin"))

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (
                ("add", "med", "{name: x, dose: 1, unit: ml}"),
                "--add-med {name: x, dose: 1, unit: ml}: unit: unknown unit 'ml'",
            ),
            (("add", "observation", "bp high"), "--add-observation bp high: expected NAME=VALUE [UNIT]"),
            (("add", "trial", "{name: x, response: great}"), "response: expected one of none, partial"),
            (("add", "med", "{name: [x"), "not a valid mapping"),
        ],
    )
    def test_bad_items_name_the_edit(self, engine, case, edit, message):
        """An item the loader refuses names the option and the field."""
        with pytest.raises(InputError, match=message.replace("[", r"\[").replace("{", r"\{")):
            edited(engine, case, edit)

    def test_unknown_kinds_and_empty_items(self):
        """Only med, condition, trial and observation can be added or removed; an item is needed."""
        with pytest.raises(InputError, match="unknown edit"):
            parse_edit("add", "allergy", "penicillin")
        with pytest.raises(InputError, match="needs an item"):
            parse_edit("remove", "med", " ")


class TestChanges:
    def test_status_findings_dose_monitoring_and_gaps(self, engine, case):
        """Switching route lists every change, each once, under its own heading."""
        lines = changes(engine, case, ("set", "", "route=ketamine-iv"), ("set", "", "weight="))

        assert "Status: cautions → specialist-review" == lines[0]
        assert "+ KCDS-CAND-003 Treatment-resistant depression (IV ketamine, off-label) [off-label]" in lines
        assert "− KCDS-INT-001 Benzodiazepine with esketamine (additive sedation) [caution]" in lines
        assert "+ Monitoring: Continuous monitoring during IV ketamine [KCDS-MON-003]" in lines
        assert "− Monitoring: Observe for at least 2 hours after esketamine [KCDS-MON-002]" in lines
        assert "+ Data gap: weight [KCDS-GAP-001]" in lines
        assert not any(line.startswith(("+ KCDS-MON", "+ KCDS-GAP")) for line in lines)

    def test_dose_changes(self, engine):
        """A heavier patient on IV ketamine: the dose line shows before and after."""
        case = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")

        assert (
            "Dose “standard (actual body weight)”: "
            "54.4 mg over 40 min (0.5 mg/kg x 108.9 kg actual weight) → "
            "60.0 mg over 40 min (0.5 mg/kg x 120.0 kg actual weight)"
            in (changes(engine, case, ("set", "", "weight=120 kg")))
        )

    def test_no_change(self, engine, case):
        """An edit that changes nothing says so."""
        assert ["No change: the same status, findings, dose, monitoring and data gaps."] == changes(
            engine, case, ("set", "", "setting=inpatient")
        )


class TestEdgeCases:
    def test_a_dose_that_appears(self, engine, case):
        """Switching to IV ketamine brings a dose where there was none."""
        assert (
            "Dose “standard (actual body weight)”: none → "
            "34.0 mg over 40 min (0.5 mg/kg x 68.0 kg actual weight)"
            in changes(engine, case, ("set", "", "route=ketamine-iv"))
        )

    def test_a_dose_not_calculated(self):
        """A dose option that could not be calculated says why."""
        from ketacds import DoseOption
        from ketacds.scenarios.whatif import _dose_text

        option = DoseOption(
            rule_id="KCDS-DOSE-002",
            label="alt",
            function="weight-based",
            mg_per_kg=Decimal("0.5"),
            weight_basis="ideal-body-weight",
            dosing_weight_kg=None,
            dose_mg=None,
            infusion_minutes=40,
            not_computed="height and sex are needed",
        )

        assert "not calculated (height and sex are needed)" == _dose_text(option)

    def test_codes_in_messages_and_names_that_look_like_codes(self, engine, case):
        """Coded items are listed by code; `foo:bar` with an unknown system is a name."""
        with pytest.raises(InputError, match=r"recorded conditions: icd-10-cm:F33\.2"):
            edited(engine, case, ("remove", "condition", "asthma"))
        record, _ = edited(engine, case, ("add", "med", "foo:bar"))

        assert "foo:bar" == record.medications[-1].name

    def test_values_that_are_not_yaml_stay_text(self, engine, case):
        """`sex=[` is not YAML; it is read as text and refused as a sex."""
        with pytest.raises(InputError, match="expected one of female, male, other, unknown"):
            edited(engine, case, ("set", "", "sex=["))

    def test_without_terminology_value_sets_do_not_match(self, case):
        """Removing by value set needs the engine's terminology."""
        record, context = case
        with pytest.raises(InputError, match="nothing matches"):
            apply_edits(record, context, [parse_edit("remove", "med", "benzodiazepines")])
