"""Every part of an order's or a medication's dosage is read or reported (docs/fhir.md, Dosage).

Drafted orders (``read_draft_orders``) and the record's medication requests and
statements (``read_bundle``): the drug by code or referred Medication, every dosage
line and dose entry, every part of the timing, the route as stated.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from ketacds import assess
from ketacds.adapters.fhir import read_bundle_case, read_draft_orders
from support import synthea

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
NASAL = {"coding": [{"system": SNOMED, "code": "46713006"}]}
ORAL = {"coding": [{"system": SNOMED, "code": "26643006"}]}
IV = {"coding": [{"system": SNOMED, "code": "47625008"}]}
WEEKLY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}


def mg(value: float, **fields: Any) -> dict[str, Any]:
    return {"doseQuantity": {"value": value, "unit": "mg", "system": UCUM, "code": "mg", **fields}}


def line(dose: float = 56, timing: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"route": NASAL, "timing": timing or WEEKLY, "doseAndRate": [mg(dose)], **fields}


def order(*dosages: dict[str, Any], rid: str = "o1", **fields: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "esketamine 28 MG/device nasal spray"},
        "dosageInstruction": list(dosages) or [line()],
    }
    resource.update(fields)
    return resource


def drafted(*resources: dict[str, Any]):
    return read_draft_orders({"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]})


def one(*resources: dict[str, Any]):
    (found,) = drafted(*resources).orders
    return found


def issues(found) -> list[tuple[str, str]]:
    return [(i.severity, i.code) for i in found.issues]


class TestThePlannedDrug:
    """An order is recognised by codes and by the Medication it refers to, not only by its text."""

    def test_a_contained_medication(self):
        medication = {"resourceType": "Medication", "id": "m", "code": {"text": "esketamine nasal spray"}}
        found = one(
            order(
                medicationCodeableConcept=None,
                medicationReference={"reference": "#m"},
                contained=[medication],
            )
        )
        assert ("esketamine", "esketamine-nasal", Decimal(56)) == (
            found.order.name,
            found.route,
            found.order.dose,
        )

    def test_a_bundled_medication_coded_in_atc(self):
        medication = {
            "resourceType": "Medication",
            "id": "m",
            "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N06AX27"}]},
        }
        drafts = drafted(
            order(medicationCodeableConcept=None, medicationReference={"reference": "Medication/m"}),
            medication,
        )
        assert ["esketamine"] == [o.order.name for o in drafts.orders]
        assert () == drafts.medications

    def test_a_code_of_ketamine_or_esketamine_only_cannot_be_checked(self):
        """RxNorm 2119365 alone is listed for ketamine-or-esketamine, not which: an error, no route."""
        found = one(order(medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "2119365"}]}))
        assert (None, [("error", "ambiguous-order")]) == (found.route, issues(found))

    def test_a_drafted_order_with_no_name_is_an_error(self):
        """An order whose drug has no name nor known code could be the planned treatment."""
        drafts = drafted(order(medicationCodeableConcept={"coding": [{"system": "urn:local", "code": "X1"}]}))
        assert ((), ("MedicationRequest/o1",)) == (drafts.orders, drafts.unrecognised)
        assert "error" in {i.severity for i in drafts.issues}

    def test_a_drafted_order_with_a_name_is_not_taken_for_the_planned_one(self):
        drafts = drafted(order(medicationCodeableConcept={"text": "amoxicillin 250 MG"}))
        assert ((), ()) == (drafts.orders, drafts.unrecognised)

    def test_several_planned_orders_signed_together(self):
        drafts = drafted(order(rid="o1"), order(rid="o2"))
        assert [[("error", "several-orders")]] * 2 == [issues(o) for o in drafts.orders]


class TestFrequency:
    """The highest frequency the timing allows is read."""

    @pytest.mark.parametrize(
        ("timing", "per_week", "found"),
        [
            ({"repeat": {"frequency": 1, "frequencyMax": 3, "period": 1, "periodUnit": "wk"}}, 3, []),
            ({"repeat": {"dayOfWeek": ["mon", "wed", "fri"]}}, 3, []),
            (  # once a day, on two days of the week: twice a week, no conflict
                {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "dayOfWeek": ["mon", "thu"]}},
                2,
                [],
            ),
            (
                {
                    "repeat": {
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "wk",
                        "dayOfWeek": ["mon", "wed", "fri"],
                    }
                },
                3,
                [("warning", "frequency-conflict")],
            ),
            (
                {
                    "code": {"coding": [{"code": "BID"}]},
                    "repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"},
                },
                14,
                [("warning", "frequency-conflict")],
            ),
            (
                {
                    "repeat": {
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                        "timeOfDay": ["08:00:00", "20:00:00"],
                    }
                },
                14,
                [("warning", "frequency-conflict")],
            ),
            ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk", "timeOfDay": ["10:00:00"]}}, 1, []),
        ],
    )
    def test_the_highest_frequency(self, timing, per_week, found):
        result = one(order(line(timing=timing)))
        assert (Decimal(per_week), found) == (result.order.per_week, issues(result))

    def test_more_than_twice_a_week_by_frequency_max_defers(self):
        """frequencyMax 3 a week: KCDS-ORD-002 fires (it did not when only frequency was read)."""
        record, context = read_bundle_case(
            json.loads(synthea("03").read_text()),
            overrides={"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T14:00:00Z"},
        )
        timing = {"repeat": {"frequency": 1, "frequencyMax": 3, "period": 1, "periodUnit": "wk"}}
        found = one(order(line(timing=timing)))
        import attrs

        assessment = assess(record, attrs.evolve(context, order=found.order))
        assert "KCDS-ORD-002" in {f.rule_id for f in assessment.findings}


class TestDose:
    """Every dosage line and dose entry is read; what cannot be is an error on an order."""

    def test_concurrent_lines_are_added(self):
        found = one(order(line(56), line(56, sequence=0)))
        assert (Decimal(112), [("warning", "concurrent-dosage")]) == (found.order.dose, issues(found))

    def test_lines_in_sequence_that_differ_are_an_error_and_the_highest_is_read(self):
        found = one(order(line(56, sequence=1), line(112, sequence=2)))
        assert (Decimal(112), [("error", "dosage-sequence")]) == (found.order.dose, issues(found))

    def test_two_doses_in_one_line_are_an_error(self):
        found = one(order({"route": NASAL, "timing": WEEKLY, "doseAndRate": [mg(56), mg(112)]}))
        assert (Decimal(112), [("error", "several-doses")]) == (found.order.dose, issues(found))

    def test_the_ordered_dose_is_read_over_the_calculated(self):
        def typed(code: str, dose: float) -> dict[str, Any]:
            kind = {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type", "code": code}]
            }
            return {"type": kind, **mg(dose)}

        found = one(
            order(
                {
                    "route": NASAL,
                    "timing": WEEKLY,
                    "doseAndRate": [typed("calculated", 56), typed("ordered", 84)],
                }
            )
        )
        assert (Decimal(84), []) == (found.order.dose, issues(found))

    @pytest.mark.parametrize(
        ("dosage", "dose", "found"),
        [
            ({"doseAndRate": [mg(56, comparator=">")]}, None, ("error", "dose-comparator")),
            ({"maxDosePerAdministration": {"value": 112, "unit": "mg"}}, 56, ("error", "max-dose-not-read")),
            (
                {
                    "maxDosePerPeriod": {
                        "numerator": {"value": 252, "unit": "mg"},
                        "denominator": {"value": 1, "unit": "wk"},
                    }
                },
                56,
                ("error", "max-dose-not-read"),
            ),
            ({"asNeededBoolean": True}, 56, ("error", "as-needed")),
            ({"timing": {"event": ["2026-11-21", "2026-11-22"]}}, 56, ("error", "frequency-not-read")),
            ({"text": "112 mg three times a week"}, 56, ("warning", "dosage-text-not-read")),
            (
                {"doseAndRate": [{"doseRange": {"low": {"value": 56, "unit": "mg"}}}]},
                None,
                ("error", "dose-range"),
            ),
        ],
    )
    def test_parts_not_read_are_said(self, dosage, dose, found):
        result = one(order({**line(), **dosage}))
        assert (Decimal(dose) if dose else None, [found]) == (result.order.dose, issues(result))

    @pytest.mark.parametrize(
        "limit",
        [
            {"maxDosePerAdministration": {"value": 56, "unit": "mg", "system": UCUM, "code": "mg"}},
            {
                "maxDosePerPeriod": {
                    "numerator": {"value": 56, "unit": "mg", "system": UCUM, "code": "mg"},
                    "denominator": {"value": 1, "unit": "wk", "system": UCUM, "code": "wk"},
                }
            },
        ],
    )
    def test_a_maximum_within_the_dose_read_adds_nothing(self, limit):
        result = one(order({**line(), **limit}))
        assert (Decimal(56), []) == (result.order.dose, issues(result))


class TestRoute:
    """A route stated but not read is an error, never an assumed nasal route."""

    @pytest.mark.parametrize(
        ("route", "found"),
        [
            ({"text": "oral"}, "route-not-read"),
            (
                {"coding": [{"system": "http://example.org/routes", "code": "PO", "display": "oral"}]},
                "route-not-read",
            ),
            ({"coding": [*ORAL["coding"], *NASAL["coding"]]}, "route-conflict"),
        ],
    )
    def test_an_unread_or_conflicting_route(self, route, found):
        result = one(order({**line(), "route": route}, medicationCodeableConcept={"text": "esketamine"}))
        assert (None, [("error", found)]) == (result.route, issues(result))

    def test_a_route_code_against_the_name(self):
        result = one(
            order(
                {**line(40), "route": IV},
                medicationCodeableConcept={"text": "ketamine 100 MG/ML nasal spray"},
            )
        )
        assert ("ketamine-iv", [("warning", "route-name-conflict")]) == (result.route, issues(result))


class TestRecordMedication:
    """A benzodiazepine with two dosage lines, or a frequencyMax, in the record (Synthea bundle 03)."""

    def bundle(self, dosages: list[dict[str, Any]], kind: str = "MedicationRequest") -> dict[str, Any]:
        bundle = copy.deepcopy(json.loads(synthea("03").read_text()))
        request = next(
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "MedicationRequest" and e["resource"]["status"] == "active"
        )
        request["medicationCodeableConcept"] = {
            "coding": [{"system": RXNORM, "code": "6470", "display": "lorazepam"}],
            "text": "lorazepam",
        }
        request["dosageInstruction"] = dosages
        return bundle

    def assessed(self, bundle: dict[str, Any]):
        record, context = read_bundle_case(
            bundle,
            overrides={"route": "esketamine-nasal", "jurisdiction": "US", "now": "2026-11-21T14:00:00Z"},
        )
        lorazepam = [m for m in record.medications if m.name == "lorazepam"]
        return lorazepam, {f.rule_id for f in assess(record, context).findings}, record

    def test_two_lines_of_one_sequence_are_added(self):
        daily = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}
        lines = [
            {"sequence": 1, "timing": daily, "doseAndRate": [mg(0.5)]},
            {"sequence": 1, "timing": daily, "doseAndRate": [mg(1)]},
        ]
        (lorazepam,), fired, record = self.assessed(self.bundle(lines))
        assert (Decimal("1.5"), Decimal(1)) == (lorazepam.dose, lorazepam.frequency_per_day)
        assert "KCDS-INT-004" in fired  # 15 mg diazepam-equivalent a day
        assert ("warning", "concurrent-dosage") in [(i.severity, i.code) for i in record.data_quality]

    def test_frequency_max_is_read(self):
        timing = {"repeat": {"frequency": 1, "frequencyMax": 4, "period": 1, "periodUnit": "d"}}
        (lorazepam,), fired, _ = self.assessed(self.bundle([{"timing": timing, "doseAndRate": [mg(0.5)]}]))
        assert Decimal(4) == lorazepam.frequency_per_day
        assert "KCDS-INT-004" in fired  # 2 mg lorazepam a day
