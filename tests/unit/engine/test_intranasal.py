"""Intranasal racemic ketamine (issue 15, item 11): a route of its own, refused, never esketamine.

No fact of the clinical reference covers racemic ketamine by the nasal route, and the
esketamine label must not be applied to it. So:

* the route ``ketamine-intranasal`` is declared in the manifest and refused in every
  jurisdiction (CLI exit 2, CDS Hooks HTTP 422: tests/integration/test_cds_service.py);
* a FHIR order for racemic ketamine by the nasal route (coded, or only named "nasal spray")
  maps to it, never to esketamine-nasal;
* a case routed esketamine-nasal whose order names racemic ketamine is an input error;
* the synthetic population never draws it.

Each of these failed on 0.3.0 (the route did not exist; the mismatched order was assessed
as esketamine).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketacds import Engine, load_ruleset
from ketacds.adapters.fhir import read_draft_orders
from ketacds.cli import main
from ketacds.errors import InputError, ProgramRefusedError, RulesetError
from ketacds.models.inputs import ROUTES, Coding, Context, Order, Patient, PatientRecord, Quantity
from ketacds.ruleset import scope
from ketacds.synthetic import synthetic_cases
from rulesets_fixtures import copy_rules, replace
from support import synthea

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NASAL = "46713006"


def _record() -> PatientRecord:
    return PatientRecord(
        patient=Patient(
            birth_date=dt.date(1975, 6, 1), sex="male", weight=Quantity(value=Decimal(80), unit="kg")
        )
    )


def _context(route: str, order: Order | None = None, jurisdiction: str = "US") -> Context:
    return Context(route=route, jurisdiction=jurisdiction, now=NOW, order=order)  # type: ignore[arg-type]


def _order(name: str | None = None, code: Coding | None = None) -> Order:
    return Order(name=name, code=code, dose=Decimal(56), unit="mg", per_week=Decimal(2))


class TestRoute:
    def test_the_route_is_declared_with_its_drug_and_refused_in_every_jurisdiction(self):
        ruleset = load_ruleset()

        assert "ketamine-intranasal" in ROUTES
        assert "ketamine-intranasal" in ruleset.routes
        assert ("ketamine-intranasal", "ketamine") in ruleset.route_drugs
        assert ("esketamine-nasal", "esketamine") in ruleset.route_drugs
        for jurisdiction in ruleset.jurisdictions:
            found = scope.coverage(ruleset, "ketamine-intranasal", jurisdiction.id)
            assert "refused" == found.state
            assert "No fact of the clinical reference covers intranasal racemic ketamine" in found.describe()
            # lifting the refusal would leave a gap, never a program with no rules
            assert {"CI_HYPERSENS", "CI_BP_ICP_RISK", "MON_ABUSE"} <= set(found.missing)

    def test_the_engine_refuses_it_naming_the_reason(self, engine: Engine):
        with pytest.raises(ProgramRefusedError) as info:
            engine.assess(_record(), _context("ketamine-intranasal"))

        assert info.value.declared
        assert "must not be applied to racemic ketamine" in str(info.value)

    def test_the_cli_exits_2_for_a_case_and_for_a_fhir_bundle(self, tmp_path: Path):
        case = tmp_path / "case.yaml"
        case.write_text(
            "patient: {birth_date: 1975-06-01, sex: male, weight: 80 kg}\n"
            "context: {route: ketamine-intranasal, jurisdiction: EU, now: 2026-11-21T09:00:00Z}\n",
            encoding="utf-8",
        )
        bundle = ["--route", "ketamine-intranasal", "--jurisdiction", "US", "--now", "2026-11-21T09:00:00Z"]

        for args in (["assess", str(case)], ["assess", *bundle, str(synthea("03"))]):
            outcome = CliRunner().invoke(main, args)
            assert 2 == outcome.exit_code, outcome.output
            assert "refuses ketamine-intranasal in" in outcome.output

    def test_the_synthetic_population_never_draws_it(self, engine: Engine):
        routes = {case["context"]["route"] for case in synthetic_cases(200, seed=3, ruleset=engine.ruleset)}

        assert "ketamine-intranasal" not in routes
        assert {"ketamine-iv", "esketamine-nasal", "ketamine-other"} == routes

    def test_a_route_drug_that_is_no_value_set_is_a_ruleset_error(self, tmp_path: Path):
        rules_dir = copy_rules(tmp_path)
        replace(rules_dir, "manifest.yaml", "    drug: esketamine\n", "    drug: esketamin\n")

        with pytest.raises(RulesetError, match="unknown value set 'esketamin'"):
            load_ruleset(rules_dir)


def _draft(concept: dict[str, Any], route: str | None) -> dict[str, Any]:
    dosage: dict[str, Any] = {
        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}},
        "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}],
    }
    if route:
        dosage["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": route}]}
    order = {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
        "dosageInstruction": [dosage],
    }
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}


class TestFhirOrders:
    @pytest.mark.parametrize(
        "concept",
        [
            {"coding": [{"system": RXNORM, "code": "6130"}]},
            {"coding": [{"system": RXNORM, "code": "6130", "display": "Ketamine"}], "text": "ketamine nasal"},
            {"text": "Ketamine hydrochloride"},
        ],
        ids=["rxnorm", "rxnorm-and-name", "name"],
    )
    def test_racemic_ketamine_by_the_nasal_route_is_ketamine_intranasal(self, concept: dict[str, Any]):
        """The SNOMED nasal route with racemic ketamine: its own route, never esketamine, never unmapped."""
        (order,) = read_draft_orders(_draft(concept, NASAL)).orders

        assert "ketamine-intranasal" == order.route
        assert "ketamine" == order.order.name
        assert [] == [i.code for i in order.issues if i.severity == "error"]

    @pytest.mark.parametrize(
        "text", ["ketamine 100 mg/mL nasal spray", "Ketamine intranasal", "racemic ketamine (nasal)"]
    )
    def test_a_ketamine_name_saying_nasal_without_a_route_code_is_ketamine_intranasal(self, text: str):
        """No route code, a name that says nasal: read from the name (a warning), never esketamine."""
        (order,) = read_draft_orders(_draft({"text": text}, None)).orders

        assert "ketamine-intranasal" == order.route
        assert [("warning", "route-from-name")] == [(i.severity, i.code) for i in order.issues]

    def test_near_misses(self):
        """Esketamine named 'nasal spray' stays esketamine; ketamine with no route at all stays unchecked."""
        (spravato,) = read_draft_orders(_draft({"text": "Spravato 28 MG nasal spray"}, None)).orders
        (bare,) = read_draft_orders(_draft({"text": "ketamine"}, None)).orders
        (oral,) = read_draft_orders(_draft({"text": "ketamine oral solution"}, "26643006")).orders

        assert ("esketamine-nasal", "ketamine-other") == (spravato.route, oral.route)
        assert (None, ["no-route"]) == (bare.route, [i.code for i in bare.issues])


class TestOrderForAnotherDrug:
    @pytest.mark.parametrize(
        "order",
        [
            _order(name="ketamine 100 mg/mL nasal spray"),
            _order(code=Coding(system=RXNORM, code="6130")),
            _order(name="Ketalar"),
        ],
        ids=["name", "rxnorm", "brand"],
    )
    def test_racemic_ketamine_ordered_for_esketamine_is_an_input_error(self, engine: Engine, order: Order):
        """In 0.3.0 this was assessed as esketamine, the racemic order read by no esketamine rule."""
        with pytest.raises(InputError) as info:
            engine.assess(_record(), _context("esketamine-nasal", order))

        assert "context.order" == info.value.path
        assert "Ketamine (racemic)" in str(info.value)
        assert "ketamine-intranasal" in str(info.value)

    def test_esketamine_ordered_for_iv_ketamine_is_an_input_error_too(self, engine: Engine):
        with pytest.raises(InputError, match="not Ketamine"):
            engine.assess(_record(), _context("ketamine-iv", _order(name="Spravato")))

    def test_near_misses_are_assessed(self, engine: Engine):
        """The route's own drug is assessed; a drug of no route is left to the unrecognised-order entry."""
        spravato_order = _order(name="Spravato 28 mg nasal spray")
        spravato = engine.assess(_record(), _context("esketamine-nasal", spravato_order))
        iv = engine.assess(_record(), _context("ketamine-iv", _order(name="ketamine")))
        other = engine.assess(_record(), _context("esketamine-nasal", _order(name="lorazepam")))

        assert spravato.status
        assert iv.status
        assert "unrecognised-order" in {i.code for i in other.data_quality}

    def test_the_cli_exits_2_naming_the_order(self, tmp_path: Path):
        case = tmp_path / "case.json"
        case.write_text(
            json.dumps(
                {
                    "patient": {"birth_date": "1975-06-01", "sex": "male", "weight": "80 kg"},
                    "context": {
                        "route": "esketamine-nasal",
                        "jurisdiction": "US",
                        "now": "2026-11-21T09:00:00Z",
                        "order": {"name": "ketamine 100 mg/mL nasal spray", "dose": 50, "unit": "mg"},
                    },
                }
            ),
            encoding="utf-8",
        )

        outcome = CliRunner().invoke(main, ["assess", str(case)])

        assert 2 == outcome.exit_code
        assert "context.order" in outcome.output
        assert "not Esketamine" in outcome.output
