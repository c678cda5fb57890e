"""The FHIR R4 adapter: Synthea bundles and hand-made resources → PatientRecord and data-quality issues."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from ketacds import Context, InputError, NotAssessedError
from ketacds.adapters.fhir import (
    bundle_resources,
    is_bundle,
    read_bundle,
    read_bundle_case,
    read_draft_orders,
    read_resources,
)
from ketacds.models.inputs import Coding, Quantity
from support import CDS_HOOKS, synthea

NOW = dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-01"}
SUBJECT = {"reference": "Patient/p1"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def codes(record) -> list[tuple[str, str]]:
    return [(i.severity, i.code) for i in record.data_quality]


def read(*resources: dict[str, Any]):
    return read_resources([PATIENT, *resources])


def condition(
    code: str = "F33.2", system: str = "http://hl7.org/fhir/sid/icd-10-cm", **fields: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": SUBJECT,
        **fields,
    }


def observation(
    code: str, value: Any = None, unit: str | None = "kg", time: str = "2026-11-20T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": fields.pop("id", f"o-{code}"),
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": SUBJECT,
        "effectiveDateTime": time,
        **fields,
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, **({"unit": unit} if unit else {})}
    return resource


def med_request(
    code: str | None = "1049221", *, status: str = "active", dosage: list[Any] | None = None, **fields: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": fields.pop("id", "m1"),
        "status": status,
        "intent": "order",
        "subject": SUBJECT,
    }
    if code is not None:
        resource["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": code}]}
    if dosage is not None:
        resource["dosageInstruction"] = dosage
    return {**resource, **fields}


class TestSynthea:
    def test_a_bundle_becomes_a_record(self):
        """Synthea 01: demographics, newest weight and height, ingredient-level medications, conditions."""
        record = read_bundle(json.loads(synthea("01").read_text()))

        assert ("male", dt.date(1920, 10, 3)) == (record.patient.sex, record.patient.birth_date)
        assert (Decimal("70.79732442379395"), "kg") == (
            record.patient.weight.value,
            record.patient.weight.unit,
        )
        assert record.patient.weight.time is not None  # so its validity window can be checked
        assert "cm" == record.patient.height.unit
        oxycodone = next(m for m in record.medications if m.name == "oxycodone")
        assert (Decimal(5), "mg", Decimal(4)) == (oxycodone.dose, oxycodone.unit, oxycodone.frequency_per_day)
        assert Coding(system="rxnorm", code="7804") == oxycodone.code
        assert {"acetaminophen", "oxycodone", "sertraline"} <= {m.name for m in record.medications}
        assert 9 == len(record.conditions)
        assert record.patient.deceased is True  # the engine refuses it (NotAssessedError)

    def test_unread_resources_are_counted_not_dropped(self):
        """Claims, encounters and the like are left out, but counted in one info entry."""
        record = read_bundle(json.loads(synthea("16").read_text()))
        (entry,) = [i for i in record.data_quality if i.code == "not-read"]

        assert "info" == entry.severity
        assert "Claim ×3" in entry.message
        assert "Observation (other codes) ×" in entry.message

    def test_only_the_newest_readings_of_a_kind_are_kept(self):
        """Long series keep their newest 5 readings per code; the rest are counted."""
        record = read_bundle(json.loads(synthea("09").read_text()))

        assert 5 == sum(1 for o in record.observations if o.code.code == "55284-4")
        assert ("info", "older-readings") in codes(record)

    @pytest.mark.parametrize(
        ("number", "status", "rules"),
        [
            # Readings years old are history, never today's pre-dose blood pressure: no DEFER
            # from a 2020 reading (issue 14), but KCDS-GAP-012 lists them and asks for a current one.
            ("03", "incomplete", {"KCDS-GAP-003", "KCDS-GAP-012"}),
            # 04, 09 and 13 have an active hypertension diagnosis: the US benefit-risk caution.
            ("04", "incomplete", {"KCDS-CI-180", "KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012"}),
            # 05 takes diphenhydramine (a sedating antihistamine): a CNS depressant with esketamine.
            (
                "05",
                "incomplete",
                {"KCDS-CI-023", "KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012", "KCDS-INT-100"},
            ),
            ("06", "incomplete", {"KCDS-CI-023", "KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012"}),
            # 07's active "Drug overdose" is in no value set a rule reads, but its text names
            # substance use (a synonym of substance-use-disorders): an unseen-item error.
            ("07", "incomplete", {"KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012", "KCDS-GAP-013"}),
            (
                "09",
                "incomplete",
                {"KCDS-CI-037", "KCDS-CI-180", "KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012"},
            ),
            ("13", "incomplete", {"KCDS-CI-180", "KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012"}),
            ("16", "incomplete", {"KCDS-GAP-003", "KCDS-GAP-006", "KCDS-GAP-012"}),
        ],
    )
    def test_what_each_bundle_produces_for_esketamine(self, engine, number, status, rules):
        """Each Synthea patient, for esketamine in the US: status and blocking findings; the only
        read errors are the unseen items of KCDS-GAP-013 (an unread active item naming a concept)."""
        record = read_bundle(json.loads(synthea(number).read_text()), terminology=engine.terminology)
        result = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))

        assert status == result.status
        assert rules == {f.rule_id for f in result.findings if f.severity != "info"}
        errors = [i.code for i in result.data_quality if i.severity == "error"]
        assert errors == (["unrecognised-condition"] if "KCDS-GAP-013" in rules else [])

    @pytest.mark.parametrize("number", ["01", "14"])
    def test_a_deceased_patient_is_not_assessed(self, engine, number):
        """Patient.deceasedDateTime: no Assessment, no status, an explicit refusal."""
        record = read_bundle(json.loads(synthea(number).read_text()), terminology=engine.terminology)

        with pytest.raises(NotAssessedError, match="deceased"):
            engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))

    def test_a_stale_dangerous_reading_is_shown_not_dropped(self, engine):
        """Synthea 09's old alert-range pressures no longer alert as current, but are the gap's basis."""
        record = read_bundle(json.loads(synthea("09").read_text()), terminology=engine.terminology)
        result = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))
        gap = result.finding("KCDS-GAP-012")

        assert gap is not None
        assert gap.basis
        assert all(ref.type == "observation" for ref in gap.basis)


class TestConditions:
    def test_refuted_and_entered_in_error_are_left_out_and_recorded(self):
        """A refuted or entered-in-error condition is not read, and says so."""
        for status in ("refuted", "entered-in-error"):
            record = read(condition(verificationStatus={"coding": [{"code": status}]}))

            assert () == record.conditions
            assert [("info", "excluded")] == codes(record)

    def test_unconfirmed_is_kept_with_a_warning(self):
        """A provisional diagnosis counts (it could matter), with a warning."""
        record = read(condition(verificationStatus={"coding": [{"code": "provisional"}]}))

        assert 1 == len(record.conditions)
        assert [("warning", "unconfirmed")] == codes(record)

    def test_missing_clinical_status_reads_as_active(self):
        """No clinicalStatus: read as active (fail safe), with a warning."""
        resource = condition()
        del resource["clinicalStatus"]
        record = read(resource)

        assert "active" == record.conditions[0].clinical_status
        assert [("warning", "assumed-active")] == codes(record)

    def test_every_known_coding_is_kept(self):
        """A condition coded in SNOMED CT and ICD-10-CM gives one item per coding (both are matched)."""
        resource = condition()
        resource["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "36474008"})
        record = read(resource)

        assert ["Condition/c1#0", "Condition/c1#1"] == [c.id for c in record.conditions]

    def test_unknown_code_system_falls_back_to_the_name(self):
        """Coded only in a local system: matched by its text, with a warning."""
        record = read(condition(code="X1", system="urn:local", onsetDateTime="2024-02-01"))
        record = read(
            {
                **condition(code="X1", system="urn:local"),
                "code": {"coding": [{"system": "urn:local", "code": "X1"}], "text": "major depression"},
            }
        )

        assert "major depression" == record.conditions[0].name
        assert [("warning", "unsupported-system")] == codes(record)

    def test_no_code_and_no_name_is_an_error(self):
        """A condition that names nothing cannot be read."""
        record = read({**condition(), "code": {"coding": []}})

        assert [("error", "no-code")] == codes(record)

    def test_an_invalid_resource_is_an_error_without_its_values(self):
        """A resource that does not validate is reported with where it is wrong, never its values."""
        record = read(condition(onsetDateTime="not-a-date-SECRET"))

        (issue,) = record.data_quality
        assert ("error", "invalid-resource", "Condition/c1") == (issue.severity, issue.code, issue.resource)
        assert "onsetDateTime" in issue.message
        assert "SECRET" not in issue.message

    def test_a_modifier_extension_means_not_read(self):
        """A resource with a modifierExtension (or implicitRules) may mean something else: not read."""
        record = read(
            condition(modifierExtension=[{"url": "http://example.org/negated", "valueBoolean": True}])
        )

        assert () == record.conditions
        assert [("error", "modifier")] == codes(record)

    def test_a_cached_outcome_is_reported_again(self):
        """The same invalid resource sent twice is reported both times (outcomes are cached, not lost)."""
        bad = condition(onsetDateTime="never")

        assert codes(read(bad)) == codes(read(bad)) == [("error", "invalid-resource")]

    def test_elements_that_are_not_read_are_not_validated(self):
        """An invalid element ketacds never reads (a note) does not stop the condition being read."""
        record = read(condition(note=[{"text": 7}]))

        assert (1, ()) == (len(record.conditions), record.data_quality)

    def test_active_pregnancy_condition_means_pregnant(self):
        """An active 'Normal pregnancy' condition makes the patient pregnant."""
        record = read(condition(code="72892002", system="http://snomed.info/sct"))

        assert record.patient.pregnant is True


class TestObservations:
    def test_weight_in_pounds_and_height_in_inches(self):
        """UCUM [lb_av] and [in_i] are read; the newest weight fills the patient."""
        old = observation("29463-7", 150, "[lb_av]", "2020-01-01T00:00:00Z", id="w0")
        new = observation("29463-7", 154, "[lb_av]", "2026-11-01T00:00:00Z", id="w1")
        height = observation("8302-2", 65, "[in_i]")
        record = read(old, new, height)

        when = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        assert Quantity(value=Decimal(154), unit="[lb_av]", time=when) == record.patient.weight
        assert (Decimal(65), "[in_i]") == (record.patient.height.value, record.patient.height.unit)

    @pytest.mark.parametrize("code", [None, {}, {"text": "systolic"}])
    def test_a_panel_component_without_a_code_is_skipped_not_a_crash(self, code: Any):
        """A component whose code is null or has no coding is not read; the others are.

        Found by the service fuzz target: ``component.code`` null gave an AttributeError (HTTP 500).
        """
        panel = observation(
            "85354-9",
            None,
            component=[
                {
                    "code": code,
                    "valueQuantity": {"value": 150, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"},
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {"value": 95, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"},
                },
            ],
        )
        (bp,) = read(panel).observations

        assert [("8462-4", Decimal(95))] == [(c.code.code, c.value) for c in bp.components]

    def test_ucum_code_wins_over_the_display_unit(self):
        """valueQuantity.code (UCUM) is read before the free-text unit."""
        resource = observation("29463-7")
        resource["valueQuantity"] = {
            "value": 70,
            "unit": "kilos",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        }

        assert "kg" == read(resource).patient.weight.unit

    def test_blood_pressure_panel_components(self):
        """An 85354-9 panel gives systolic and diastolic components in mm[Hg]."""
        panel = observation(
            "85354-9",
            None,
            component=[
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                    "valueQuantity": {"value": 150, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"},
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {"value": 95, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"},
                },
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueQuantity": {"value": 80, "code": "/min", "system": "http://unitsofmeasure.org"},
                },
            ],
        )
        (bp,) = read(panel).observations

        assert [("8480-6", Decimal(150)), ("8462-4", Decimal(95)), ("8867-4", Decimal(80))] == [
            (c.code.code, c.value) for c in bp.components
        ]

    def test_unknown_unit_is_an_error(self):
        """A weight in stones cannot be converted: an error, and no weight."""
        record = read(observation("29463-7", 11, "[stone_av]"))

        assert record.patient.weight is None
        assert [("error", "unknown-unit")] == codes(record)

    def test_missing_unit_is_an_error_where_it_matters(self):
        """A weight without a unit is an error; a PHQ-9 score without one is fine."""
        record = read(observation("29463-7", 70, None), observation("44261-6", 19, None))

        assert [("error", "missing-unit")] == codes(record)
        assert [Decimal(19)] == [o.value for o in record.observations]

    def test_no_value_is_a_warning(self):
        """A reading with a data-absent reason instead of a value is left out with a warning."""
        record = read(observation("44261-6", dataAbsentReason={"coding": [{"code": "asked-declined"}]}))

        assert [("warning", "no-value")] == codes(record)

    def test_entered_in_error_is_left_out(self):
        """An observation marked entered-in-error is not read."""
        record = read(observation("29463-7", 70, status="entered-in-error"))

        assert record.patient.weight is None
        assert [("info", "excluded")] == codes(record)

    def test_date_only_and_period_times(self):
        """A date-only reading is taken at 00:00 UTC (warning); a period uses its end."""
        dated = observation("44261-6", 12, None, "2026-11-20", id="d")
        period = observation("44261-6", 14, None, id="p")
        del period["effectiveDateTime"]
        period["effectivePeriod"] = {"start": "2026-11-19T08:00:00Z", "end": "2026-11-19T09:00:00Z"}
        record = read(dated, period)

        times = sorted(o.time for o in record.observations)
        assert [
            dt.datetime(2026, 11, 19, 9, tzinfo=dt.UTC),
            dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        ] == times
        assert [("warning", "date-only")] == codes(record)

    def test_partial_time_is_untimed(self):
        """A reading dated only to the year is read without a time (warning)."""
        record = read(observation("44261-6", 12, None, "2026"))

        assert record.observations[0].time is None
        assert [("warning", "partial-date")] == codes(record)

    @pytest.mark.parametrize(
        ("answer", "pregnant"),
        [
            ({"system": "http://loinc.org", "code": "LA15173-0"}, True),
            ({"system": "http://snomed.info/sct", "code": "60001007"}, False),
        ],
    )
    def test_pregnancy_status(self, answer, pregnant):
        """The newest pregnancy-status observation (82810-3) says pregnant or not."""
        record = read(observation("82810-3", valueCodeableConcept={"coding": [answer]}))

        assert pregnant is record.patient.pregnant
        assert () == record.observations  # a coded status is not a measurement

    def test_pregnancy_condition_beats_a_not_pregnant_status(self):
        """An active pregnancy condition and a 'not pregnant' status: pregnant, with a conflict warning."""
        status = observation(
            "82810-3", valueCodeableConcept={"coding": [{"system": "http://loinc.org", "code": "LA26683-5"}]}
        )
        record = read(status, condition(code="77386006", system="http://snomed.info/sct"))

        assert record.patient.pregnant is True
        assert ("warning", "conflict") in codes(record)

    def test_unknown_pregnancy_answer(self):
        """An answer ketacds does not know leaves pregnancy unknown, with an error (it may say pregnant)."""
        record = read(
            observation(
                "82810-3",
                valueCodeableConcept={"coding": [{"system": "http://loinc.org", "code": "LA4489-6"}]},
            )
        )

        assert record.patient.pregnant is None
        assert [("error", "unknown-code")] == codes(record)


class TestMedications:
    def test_unknown_active_product_is_an_error_the_rules_see(self, engine):
        """An active product no table or value set knows: error, and the status is at best incomplete."""
        record = read(med_request("999999"))
        result = engine.assess(record, Context(route="esketamine-nasal", jurisdiction="US", now=NOW))

        assert [("error", "unmapped-medication")] == codes(record)
        assert "KCDS-GAP-013" in result.rule_ids

    def test_unknown_stopped_product_is_a_warning(self):
        """A stopped product no one knows is only a warning."""
        assert [("warning", "unmapped-medication")] == codes(read(med_request("999999", status="stopped")))

    def test_value_set_codes_need_no_product_table(self):
        """An ingredient code a value set lists (clonazepam) is read without a table entry."""
        record = read(med_request("2598"))

        assert ((), "2598") == (record.data_quality, record.medications[0].code.code)

    def test_cancelled_and_not_taken_are_left_out(self):
        """Cancelled requests and not-taken statements are not medications the patient takes."""
        statement = {
            **med_request(),
            "resourceType": "MedicationStatement",
            "id": "s1",
            "status": "not-taken",
        }
        del statement["intent"]
        record = read(med_request(status="cancelled"), statement)

        assert () == record.medications
        assert [("info", "excluded"), ("info", "excluded")] == codes(record)

    def test_unknown_status_reads_as_active(self):
        """Status unknown: read as active, with a warning."""
        record = read(med_request(status="unknown"))

        assert {"active"} == {m.status for m in record.medications}
        assert [("warning", "assumed-active")] == codes(record)

    def test_dose_from_volume_and_concentration(self):
        """5 mL of memantine 2 mg/mL twice a day (BID) is 10 mg, 2 a day."""
        dosage = [
            {
                "timing": {"code": {"coding": [{"code": "BID"}]}},
                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mL"}}],
            }
        ]
        (memantine,) = read(med_request("996740", dosage=dosage)).medications

        assert (Decimal(10), "mg", Decimal(2)) == (
            memantine.dose,
            memantine.unit,
            memantine.frequency_per_day,
        )

    def test_stu3_dose_is_read_leniently(self):
        """The STU3 doseQuantity of the spec's example is read, with a warning."""
        dosage = [
            {
                "doseQuantity": {"value": 1},
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            }
        ]
        record = read(med_request("308192", dosage=dosage))

        assert (Decimal(500), Decimal(2)) == (
            record.medications[0].dose,
            record.medications[0].frequency_per_day,
        )
        assert [("warning", "lenient-parse")] == codes(record)

    def test_dose_range_reads_its_upper_end(self):
        """A dose range is read at its upper end (warning)."""
        dosage = [{"doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2}}}]}]
        record = read(med_request("313782", dosage=dosage))

        assert Decimal(650) == record.medications[0].dose
        assert [("warning", "dose-range")] == codes(record)

    def test_doses_that_cannot_become_mg(self):
        """A mass dose of a combination, or puffs of an unknown strength: no dose, a warning each."""
        mass = [{"doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg"}}]}]
        puffs = [{"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "{puff}"}}]}]
        record = read(
            med_request("1049221", dosage=mass, id="a"), med_request("198031", dosage=puffs, id="b")
        )

        assert {None} == {m.dose for m in record.medications}
        assert 3 == codes(record).count(("warning", "dose-not-read"))

    def test_unreadable_timing_is_a_warning(self):
        """A timing with neither a period nor a known code: frequency unknown, warning."""
        dosage = [{"timing": {"code": {"coding": [{"code": "XYZ"}]}}}]
        record = read(med_request("316049", dosage=dosage))

        assert record.medications[0].frequency_per_day is None
        assert [("warning", "frequency-not-read")] == codes(record)

    @pytest.mark.parametrize(
        ("frequency", "period"), [(1, "6E-27"), (1, "1e-40"), (1, "1e-15"), (1, "1E+20")]
    )
    def test_a_rate_past_the_number_limits_is_a_warning_not_a_crash(self, frequency: Any, period: Any):
        """A period of 6e-27 days (10^26 a day) is not read as a frequency: a warning, no exception.

        Found by the service fuzz target: ``decimal.InvalidOperation`` (HTTP 500).
        """
        timing = {"repeat": {"frequency": frequency, "period": period, "periodUnit": "d"}}
        record = read(med_request("316049", dosage=[{"timing": timing}]))

        assert record.medications[0].frequency_per_day is None
        assert [("warning", "frequency-not-read")] == codes(record)

    def test_medication_reference_is_resolved_in_the_bundle_or_contained(self):
        """medicationReference to a bundled or contained Medication is followed; a display is a name."""
        bundled = {
            "resourceType": "Medication",
            "id": "med1",
            "code": {"coding": [{"system": RXNORM, "code": "2598"}]},
        }
        contained = {
            **med_request(None, id="m2"),
            "contained": [{**bundled, "id": "x"}],
            "medicationReference": {"reference": "#x"},
        }
        referenced = {**med_request(None, id="m3"), "medicationReference": {"reference": "Medication/med1"}}
        shown = {
            **med_request(None, id="m4"),
            "medicationReference": {"reference": "Medication/gone", "display": "clonazepam"},
        }
        record = read(bundled, contained, referenced, shown)

        assert [("2598", None), ("2598", None), (None, "clonazepam")] == [
            (m.code.code if m.code else None, m.name) for m in record.medications
        ]

    def test_a_remembered_reading_follows_the_medication_referred_to(self):
        """The same request read again is remembered, but never across a different referred Medication."""
        request = {**med_request(None, id="m3"), "medicationReference": {"reference": "Medication/med1"}}

        def medication(code: str) -> dict[str, Any]:
            return {
                "resourceType": "Medication",
                "id": "med1",
                "code": {"coding": [{"system": RXNORM, "code": code}]},
            }

        readings = [read(medication(code), request) for code in ("2598", "596", "2598", "596")]
        readings.append(read(request))  # the Medication not given this time

        assert [["2598"], ["596"], ["2598"], ["596"], []] == [
            [m.code.code for m in r.medications if m.code] for r in readings
        ]
        assert [("error", "unresolved-reference")] == codes(readings[-1])
        assert readings[0] == readings[2]
        assert readings[1] == readings[3]

    def test_unresolved_reference_is_an_error(self):
        """A reference to a Medication that was not given, without a display, cannot be read."""
        record = read({**med_request(None), "medicationReference": {"reference": "Medication/gone"}})

        assert [("error", "unresolved-reference")] == codes(record)


class TestRecordShape:
    def test_several_patients_need_a_patient_id(self):
        """Two patients and no patient id: an input error; with an id, the other's data is left out."""
        other = {**PATIENT, "id": "p2"}
        with pytest.raises(InputError, match="hold 2 patients"):
            read_resources([PATIENT, other])

        record = read_resources(
            [PATIENT, other, {**condition(), "subject": {"reference": "Patient/p2"}}], patient_id="p1"
        )
        assert "p1" == record.patient.id
        assert [("error", "other-patient"), ("error", "other-patient")] == codes(record)

    def test_absolute_references_match_the_patient(self):
        """An absolute URL is this patient's when it is the Patient's fullUrl or on the entry's own server."""
        base = "https://ehr.example.org/fhir/"
        absolute = condition(subject={"reference": f"{base}Patient/p1"})
        as_full_url = read_resources([(f"{base}Patient/p1", PATIENT), absolute])
        same_server = read_resources([PATIENT, (f"{base}Condition/c1", absolute)])
        unknown = read(absolute)

        assert (1, 1, 0) == tuple(len(r.conditions) for r in (as_full_url, same_server, unknown))
        assert [("error", "other-patient")] == codes(unknown)

    def test_partial_birth_date_and_no_patient(self):
        """A year-only birth date gives no age (warning); data without a Patient still reads."""
        assert [("warning", "partial-date")] == codes(read_resources([{**PATIENT, "birthDate": "1980"}]))
        assert 1 == len(read_resources([condition()]).conditions)

    def test_junk_entries_are_reported(self):
        """Non-resources, an OperationOutcome and a changed duplicate are each reported."""
        outcome = {"resourceType": "OperationOutcome", "id": "oo", "issue": []}
        record = read_resources([PATIENT, 42, outcome, condition(), condition(onsetDateTime="2020-01-01")])

        assert [("error", "invalid-resource"), ("error", "source-error"), ("error", "duplicate")] == codes(
            record
        )

    def test_allergies(self):
        """Allergies are read with their status; refuted ones and ones naming nothing are reported."""
        allergy = {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": "300913006"}],
                "text": "Shellfish",
            },
            "patient": SUBJECT,
        }
        refuted = {**allergy, "id": "a2", "verificationStatus": {"coding": [{"code": "refuted"}]}}
        empty = {
            **allergy,
            "id": "a3",
            "code": {"coding": []},
            "clinicalStatus": {"coding": [{"code": "active"}]},
        }
        record = read(allergy, refuted, empty)

        assert [("active", "300913006")] == [(a.status, a.code.code) for a in record.allergies]
        assert [("warning", "assumed-active"), ("info", "excluded"), ("error", "no-code")] == codes(record)

    def test_bundle_helpers(self):
        """is_bundle and bundle_resources know a Bundle; anything else is an input error."""
        assert is_bundle({"resourceType": "Bundle"})
        assert not is_bundle([])
        with pytest.raises(InputError, match="expected a FHIR Bundle"):
            bundle_resources({"resourceType": "Patient"})

    def test_a_bundle_case_needs_its_context_from_the_caller(self):
        """A Bundle has no route, jurisdiction or now: the caller gives them."""
        bundle = {"resourceType": "Bundle", "entry": [{"resource": PATIENT}]}
        with pytest.raises(InputError, match="give jurisdiction, now"):
            read_bundle_case(bundle, overrides={"route": "ketamine-iv", "jurisdiction": None})

        record, context = read_bundle_case(
            bundle, overrides={"route": "ketamine-iv", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"}
        )
        assert ("p1", "ketamine-iv") == (record.patient.id, context.route)


class TestDraftOrders:
    def order(
        self, concept: dict[str, Any], route: str | None = None, dose: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        dosage: dict[str, Any] = {"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}}}
        if route:
            dosage["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": route}]}
        if dose:
            dosage["doseAndRate"] = [{"doseQuantity": dose}]
        return {
            "resourceType": "MedicationRequest",
            "id": "o1",
            "status": "draft",
            "intent": "order",
            "subject": SUBJECT,
            "medicationCodeableConcept": concept,
            "dosageInstruction": [dosage],
        }

    def test_esketamine_by_name_with_the_route_its_name_states(self):
        """'Spravato 28 MG nasal spray' is esketamine; with no route code, its name says nasal (warning)."""
        drafts = read_draft_orders(
            {
                "resourceType": "Bundle",
                "entry": [
                    {
                        "resource": self.order(
                            {"text": "Spravato 28 MG nasal spray"}, dose={"value": 56, "unit": "mg"}
                        )
                    }
                ],
            }
        )

        (order,) = drafts.orders
        assert ("esketamine-nasal", Decimal(56), Decimal(2)) == (
            order.route,
            order.order.dose,
            order.order.per_week,
        )
        assert [("warning", "route-from-name")] == [(i.severity, i.code) for i in order.issues]

    def test_ketamine_by_code_and_route(self):
        """RxNorm ketamine by the IV route is IV ketamine; by mouth it is 'other'."""
        concept = {"coding": [{"system": RXNORM, "code": "6130"}]}
        iv = read_draft_orders(
            {"resourceType": "Bundle", "entry": [{"resource": self.order(concept, "47625008")}]}
        )
        oral = read_draft_orders(
            {"resourceType": "Bundle", "entry": [{"resource": self.order(concept, "26643006")}]}
        )

        assert ["ketamine-iv"] == [o.route for o in iv.orders]
        assert ["ketamine-other"] == [o.route for o in oral.orders]

    def test_orders_that_cannot_be_checked(self):
        """Ketamine with no route, or esketamine by vein: no route, an error saying why."""
        ketamine = self.order({"coding": [{"system": RXNORM, "code": "6130"}]})
        esketamine_iv = {**self.order({"text": "esketamine"}, "47625008"), "id": "o2"}
        drafts = read_draft_orders(
            {"resourceType": "Bundle", "entry": [{"resource": ketamine}, {"resource": esketamine_iv}]}
        )

        assert [None, None] == [o.route for o in drafts.orders]
        assert [["no-route", "several-orders"], ["unsupported-route", "several-orders"]] == [
            [i.code for i in o.issues] for o in drafts.orders
        ]

    def test_other_drafts_are_intended_medications(self):
        """The spec's drafted amoxicillin is an intended medication; the diet is not read."""
        context = json.loads((CDS_HOOKS / "order-sign-context-r4.json").read_text())["context"]
        drafts = read_draft_orders(context["draftOrders"])

        assert () == drafts.orders
        assert {("amoxicillin", "intended"), ("clavulanate", "intended")} == {
            (m.name, m.status) for m in drafts.medications
        }
        assert {("warning", "lenient-parse"), ("info", "not-read")} == {
            (i.severity, i.code) for i in drafts.issues
        }

    def test_an_invalid_draft_is_still_checked_as_far_as_it_can_be(self):
        """A drafted esketamine order that does not validate: an error, nasal assumed, no dose."""
        invalid = {**self.order({"text": "esketamine"}), "subject": "Patient/p1"}
        (order,) = read_draft_orders({"resourceType": "Bundle", "entry": [{"resource": invalid}]}).orders

        assert ("esketamine-nasal", None) == (order.route, order.order.dose)
        assert ["invalid-resource", "assumed-route"] == [i.code for i in order.issues]

    @pytest.mark.parametrize("coding", [True, 5, None, "text", {"system": "x"}, [True, None, 3]])
    def test_an_order_coding_that_is_not_a_list_of_codings_is_reported_not_a_crash(self, coding: Any):
        """medicationCodeableConcept.coding of the wrong type: no codes read, never a TypeError.

        Found by the service fuzz target: an HTTP 500 on order-select and order-sign.
        """
        order = self.order({"coding": coding, "text": "Spravato 28 MG nasal spray"})
        drafts = read_draft_orders({"resourceType": "Bundle", "entry": [{"resource": order}]})

        (drafted,) = drafts.orders  # still found by its text
        assert drafted.route == "esketamine-nasal"

    def test_draft_orders_that_are_not_a_bundle(self):
        """draftOrders of the wrong shape is an error, not a crash."""
        assert [("error", "invalid-resource")] == [
            (i.severity, i.code) for i in read_draft_orders([1]).issues
        ]

    def test_ordered_dose_in_units_is_not_a_dose(self):
        """An esketamine order in devices (not mg) has no dose (the rules then report it) and a warning."""
        drafts = read_draft_orders(
            {
                "resourceType": "Bundle",
                "entry": [
                    {
                        "resource": self.order(
                            {"text": "esketamine"}, "46713006", {"value": 2, "unit": "{device}"}
                        )
                    }
                ],
            }
        )

        assert drafts.orders[0].order.dose is None
        assert ["dose-not-read"] == [i.code for i in drafts.orders[0].issues]


def test_a_bundle_read_again_gives_the_same_record_and_issues() -> None:
    """Reads of validated resources are remembered; a second read must give the very same record."""
    from ketacds.adapters.fhir import read_bundle

    bundle = json.loads(synthea("01").read_text())
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "excluded-weight",
                "status": "entered-in-error",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "effectiveDateTime": "2099-01-01T00:00:00Z",
                "valueQuantity": {"value": 80, "unit": "kg"},
            }
        }
    )
    first = read_bundle(bundle)
    again = read_bundle(json.loads(json.dumps(bundle)))
    assert again == first
    assert any(issue.code == "excluded" for issue in again.data_quality)
