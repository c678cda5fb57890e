"""Loading patient records and contexts from plain data, JSON and YAML."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from ketacds import InputError, load_case, load_case_file, load_context, load_record

CONTEXT = {"route": "ketamine-iv", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"}


class TestRecord:
    def test_minimal_record(self):
        """A record needs only a patient; every list defaults to empty."""
        record = load_record({"patient": {}})

        assert () == record.conditions
        assert None is record.patient.weight

    def test_quantity_text_and_mapping_are_equivalent(self):
        """'70 kg' and {value: 70, unit: kg} read the same."""
        a = load_record({"patient": {"weight": "70 kg"}})
        b = load_record({"patient": {"weight": {"value": 70, "unit": "kg"}}})

        assert a == b
        assert Decimal(70) == a.patient.weight.value

    def test_code_system_short_names_become_uris(self):
        """A code system given as 'icd-10-cm' is stored as its canonical URI."""
        record = load_record(
            {"patient": {}, "conditions": [{"code": {"system": "icd-10-cm", "code": "F33.2"}}]}
        )

        assert "http://hl7.org/fhir/sid/icd-10-cm" == record.conditions[0].code.system

    def test_frequency_abbreviation(self):
        """'bid' means twice a day."""
        record = load_record(
            {
                "patient": {},
                "medications": [{"name": "lorazepam", "dose": 1, "unit": "mg", "frequency": "bid"}],
            }
        )

        assert Decimal(2) == record.medications[0].frequency_per_day

    @pytest.mark.parametrize(
        ("data", "path"),
        [
            ({"patient": {"weight": "heavy"}}, "patient.weight"),
            ({"patient": {"weight": "70 stone"}}, "patient.weight"),
            ({"patient": {"sex": "f"}}, "patient.sex"),
            ({"patient": {"wieght": "70 kg"}}, "patient.wieght"),
            ({"patient": {}, "medications": [{"name": "x"}, {"dose": 1, "unit": "mg"}]}, "medications[1]"),
            ({"patient": {}, "medications": [{"name": "x", "dose": 1, "unit": "ml"}]}, "medications[0].unit"),
            (
                {"patient": {}, "medications": [{"name": "x", "frequency": "sometimes"}]},
                "medications[0].frequency",
            ),
            (
                {"patient": {}, "conditions": [{"code": {"system": "read-v2", "code": "X"}}]},
                "conditions[0].code.system",
            ),
            ({"patient": {}, "trials": [{"name": "x", "weeks": -1}]}, "trials[0].weeks"),
            (
                {"patient": {}, "observations": [{"name": "bp", "time": "2026-11-21T09:00:00"}]},
                "observations[0].time",
            ),
            ({"patient": {}, "conditions": "F33.2"}, "conditions"),
            ({}, "patient"),
        ],
    )
    def test_errors_name_the_field(self, data, path):
        """Every unreadable field is reported with its path."""
        with pytest.raises(InputError) as info:
            load_record(data)

        assert path == info.value.path

    @pytest.mark.parametrize("weight", ["68,5 kg", "68,5kg", "1,000 kg", "68. kg", "68.5.1 kg"])
    def test_a_malformed_number_is_named_not_taken_for_a_unit(self, weight):
        """'68,5 kg' has a decimal comma: the number is malformed, not the unit ',5 kg' unknown."""
        with pytest.raises(InputError) as info:
            load_record({"patient": {"weight": weight}})

        assert "patient.weight" == info.value.path
        assert "is malformed" in str(info.value)
        assert "unit" not in str(info.value)

    def test_a_decimal_point_is_read(self):
        assert Decimal("68.5") == load_record({"patient": {"weight": "68.5 kg"}}).patient.weight.value


class TestContext:
    def test_now_must_have_a_timezone(self):
        """A naive 'now' is refused: nothing may guess the clock's zone."""
        with pytest.raises(InputError) as info:
            load_context({**CONTEXT, "now": "2026-11-21T09:00:00"})

        assert "context.now" == info.value.path

    def test_an_unknown_setting_is_refused(self):
        """A typo in the setting ('inpatinet') is refused, naming the field and the allowed values.

        The rules compare the setting with 'inpatient': a misspelt one would silently be
        read as not inpatient (the REMS duties of an outpatient setting).
        """
        with pytest.raises(InputError) as info:
            load_context({**CONTEXT, "setting": "inpatinet"})

        assert "context.setting" == info.value.path
        assert "outpatient, inpatient, certified-healthcare-setting" in str(info.value)
        assert "inpatient" == load_context({**CONTEXT, "setting": "inpatient"}).setting

    @pytest.mark.parametrize("missing", ["route", "jurisdiction", "now"])
    def test_required_fields(self, missing):
        """Route, jurisdiction and now are required."""
        data = {k: v for k, v in CONTEXT.items() if k != missing}
        with pytest.raises(InputError) as info:
            load_context(data)

        assert f"context.{missing}" == info.value.path

    def test_the_course_fields_of_a_plan(self):
        """Session number, missed sessions and worsening are read; 'unknown' worsening is not known (None)."""
        plan = {
            "session_number": 1,
            "treatment_week": 1,
            "missed_sessions": 2,
            "symptoms_worsened": "unknown",
        }
        context = load_context({**CONTEXT, "plan": plan})

        assert context.plan is not None
        assert (1, 2, None) == (
            context.plan.session_number,
            context.plan.missed_sessions,
            context.plan.symptoms_worsened,
        )
        assert load_context({**CONTEXT, "plan": {"symptoms_worsened": False}}).plan.symptoms_worsened is False

    @pytest.mark.parametrize(
        ("plan", "field"),
        [
            ({"session_number": 0}, "session_number"),
            ({"session_number": 1.5}, "session_number"),
            ({"session_number": 1, "treatment_week": 3}, "session_number"),
            ({"missed_sessions": -1}, "missed_sessions"),
            ({"symptoms_worsened": "no"}, "symptoms_worsened"),
            ({"symptoms_worsened": 0}, "symptoms_worsened"),
        ],
    )
    def test_course_field_errors_name_the_field(self, plan, field):
        """Session 1 is in week 1; counts are whole numbers; worsening is true, false or unknown."""
        with pytest.raises(InputError) as info:
            load_context({**CONTEXT, "plan": plan})

        assert f"context.plan.{field}" == info.value.path

    def test_overrides_replace_the_document(self):
        """CLI overrides win over the file's context."""
        _, context = load_case(
            {"patient": {}, "context": CONTEXT}, overrides={"route": "esketamine-nasal", "now": None}
        )

        assert "esketamine-nasal" == context.route
        assert dt.datetime(2026, 11, 21, 9, tzinfo=dt.UTC) == context.now


class TestFiles:
    def test_yaml_and_json_read_the_same(self, tmp_path: Path):
        """The same case in YAML and JSON gives equal records and contexts."""
        (tmp_path / "a.yaml").write_text(
            "patient: {weight: 70.5 kg}\n"
            "context: {route: ketamine-iv, jurisdiction: US, now: 2026-11-21T09:00:00Z}\n"
        )
        (tmp_path / "a.json").write_text(
            '{"patient": {"weight": {"value": 70.5, "unit": "kg"}},'
            ' "context": {"route": "ketamine-iv", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"}}'
        )

        assert load_case_file(tmp_path / "a.yaml") == load_case_file(tmp_path / "a.json")

    def test_duplicate_yaml_keys_are_refused(self, tmp_path: Path):
        """A YAML file with a key twice is an error, never 'the second one wins'."""
        (tmp_path / "a.yaml").write_text("patient: {weight: 70 kg, weight: 90 kg}\n")

        with pytest.raises(InputError) as info:
            load_case_file(tmp_path / "a.yaml")

        assert "duplicate" in str(info.value)
        assert info.value.path.endswith(":1")
