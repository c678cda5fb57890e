"""The Engine end to end on the example patients, and its public guarantees."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import attrs
import pytest

from ketacds import (
    Assessment,
    Context,
    DigestMismatchError,
    Engine,
    InputError,
    Medication,
    assess,
    load_case_file,
)
from support import EXAMPLES

# For each example: the status, rules that must fire, and rules that must not.
# (Every rule is exercised by the scenario suite in tests/scenarios/.)
EXPECTED = {
    "01-trd-esketamine-us.yaml": (
        "cautions",
        {"KCDS-CAND-002", "KCDS-INT-001", "KCDS-INT-004", "KCDS-DOSE-008", "KCDS-MON-001", "KCDS-MON-009"},
        {"KCDS-CAND-009", "KCDS-CI-004", "KCDS-GAP-008"},
    ),
    "02-trd-iv-ketamine-obese.yaml": (
        "specialist-review",
        {"KCDS-CAND-003", "KCDS-INT-002", "KCDS-INT-003", "KCDS-DOSE-001", "KCDS-DOSE-002", "KCDS-MON-003"},
        {"KCDS-CAND-004", "KCDS-GAP-001"},
    ),
    "03-esketamine-aortic-aneurysm.yaml": (
        "contraindicated",
        {"KCDS-CI-001", "KCDS-CAND-130", "KCDS-CAND-008", "KCDS-DOSE-010"},
        {"KCDS-MON-009", "KCDS-DOSE-008", "KCDS-CAND-002"},
    ),
    "04-esketamine-bp-defer.yaml": ("defer", {"KCDS-CI-004", "KCDS-CAND-002"}, {"KCDS-CI-012"}),
    "05-iv-incomplete-record.yaml": (
        "incomplete",
        {"KCDS-GAP-001", "KCDS-GAP-002", "KCDS-GAP-003", "KCDS-GAP-008"},
        {"KCDS-CAND-004"},
    ),
    "06-esketamine-not-indicated.yaml": ("not-indicated", {"KCDS-CAND-004"}, {"KCDS-CAND-002"}),
    "07-esketamine-avm-us.yaml": ("contraindicated", {"KCDS-CI-002", "KCDS-CAND-009"}, {"KCDS-CI-001"}),
    "08-esketamine-systolic-only.yaml": (
        "defer",
        {"KCDS-CI-004", "KCDS-CAND-002", "KCDS-MON-001", "KCDS-MON-002"},
        {"KCDS-CI-012"},
    ),
    "10-esketamine-order-above-maximum.yaml": (
        "defer",
        {"KCDS-ORD-001", "KCDS-ORD-002", "KCDS-CAND-002", "KCDS-MON-001", "KCDS-MON-002"},
        {"KCDS-ORD-003", "KCDS-CI-004"},
    ),
    "11-iv-ketamine-order-high-dose.yaml": (
        "specialist-review",
        {"KCDS-CAND-003", "KCDS-ORD-003", "KCDS-DOSE-001", "KCDS-MON-003"},
        {"KCDS-ORD-001", "KCDS-CAND-004"},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples(engine, name):
    """Each example patient gets the expected status, with and without the named findings."""
    record, context = load_case_file(EXAMPLES / name)
    result = engine.assess(record, context)
    status, present, absent = EXPECTED[name]

    assert (status, present, set()) == (
        result.status,
        present & set(result.rule_ids),
        absent & set(result.rule_ids),
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_agrees_on_examples(engine, name):
    """The reference evaluator gives the same Assessment as durable_rules (but for the engine name)."""
    record, context = load_case_file(EXAMPLES / name)
    durable = engine.assess(record, context)
    reference = engine.assess(record, context, backend="reference")

    assert attrs.evolve(durable, provenance=attrs.evolve(durable.provenance, engine="x")) == attrs.evolve(
        reference, provenance=attrs.evolve(reference.provenance, engine="x")
    )


def test_examples_cover_every_category(engine):
    """The demo patients show at least one finding of every category."""
    categories = set()
    for name in EXPECTED:
        record, context = load_case_file(EXAMPLES / name)
        categories |= {f.category for f in engine.assess(record, context).findings}

    assert {"candidacy", "contraindication", "interaction", "dosing", "monitoring", "data-gap"} == categories


class TestDose:
    def test_iv_dose_on_actual_and_ideal_weight(self, engine):
        """240 lb, 70 in, male: 0.5 mg/kg on 108.9 kg actual and on 73.0 kg Devine IBW."""
        record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")
        options = {o.rule_id: o for o in engine.assess(record, context).dose.options}

        assert (Decimal("108.9"), Decimal("54.4"), 40) == (
            options["KCDS-DOSE-001"].dosing_weight_kg,
            options["KCDS-DOSE-001"].dose_mg,
            options["KCDS-DOSE-001"].infusion_minutes,
        )
        assert (Decimal("73.0"), Decimal("36.5")) == (
            options["KCDS-DOSE-002"].dosing_weight_kg,
            options["KCDS-DOSE-002"].dose_mg,
        )

    def test_weight_in_kg_and_lb_give_the_same_dose(self, engine):
        """Unit invariance: 68 kg and 149.914... lb are the same patient."""
        record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")
        in_lb = engine.assess(record, context).dose
        kg = record.patient.weight.value * Decimal("0.45359237")
        in_kg = engine.assess(
            attrs.evolve(
                record,
                patient=attrs.evolve(
                    record.patient, weight=attrs.evolve(record.patient.weight, value=kg, unit="kg")
                ),
            ),
            context,
        ).dose

        assert in_lb == in_kg


class TestDataGaps:
    def test_missing_data_never_reassures(self, engine, now):
        """An empty record is incomplete, never 'no concerns'."""
        record, _ = load_case_file(EXAMPLES / "05-iv-incomplete-record.yaml")
        empty = attrs.evolve(record, conditions=())
        for route in ("ketamine-iv", "esketamine-nasal", "ketamine-other"):
            result = engine.assess(empty, Context(route=route, jurisdiction="US", now=now))

            assert "incomplete" == result.status
            assert {"KCDS-GAP-002", "KCDS-GAP-003", "KCDS-GAP-006"} <= {g.rule_id for g in result.data_gaps}

    def test_trial_of_unknown_adequacy_is_a_gap(self, engine):
        """A trial without dose adequacy is a gap: the status is incomplete, never 'not indicated'."""
        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        unknown = attrs.evolve(
            record, trials=(attrs.evolve(record.trials[0], adequate_dose=None), record.trials[1])
        )
        result = engine.assess(unknown, context)

        assert "KCDS-GAP-004" in result.rule_ids
        assert "KCDS-CAND-004" not in result.rule_ids
        assert "incomplete" == result.status

    def test_obese_patient_without_sex_gets_a_gap_and_no_ibw_dose(self, engine):
        """BMI ≥30 with sex unknown: the IBW alternative cannot be computed, and says so."""
        record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")
        result = engine.assess(attrs.evolve(record, patient=attrs.evolve(record.patient, sex=None)), context)

        assert "KCDS-GAP-005" in result.rule_ids
        assert ["KCDS-DOSE-001"] == [o.rule_id for o in result.dose.options]

    def test_age_unknown_is_a_gap(self, engine):
        """No birth date and no age: a data gap."""
        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        result = engine.assess(
            attrs.evolve(record, patient=attrs.evolve(record.patient, birth_date=None)), context
        )

        assert "KCDS-GAP-007" in result.rule_ids


class TestScoping:
    def test_avm_is_a_us_only_contraindication(self, engine):
        """AVM blocks esketamine in the US; the EU label does not name it."""
        record, context = load_case_file(EXAMPLES / "07-esketamine-avm-us.yaml")

        assert "KCDS-CI-002" in engine.assess(record, context).rule_ids
        assert "KCDS-CI-002" not in engine.assess(record, attrs.evolve(context, jurisdiction="EU")).rule_ids

    def test_eu_rules_apply_in_germany(self, engine):
        """DE lies within EU: the EU aneurysm contraindication applies there."""
        record, context = load_case_file(EXAMPLES / "03-esketamine-aortic-aneurysm.yaml")
        result = engine.assess(record, context)

        assert ("DE", "EU") == result.provenance.jurisdiction_scope
        assert "KCDS-CI-001" in result.rule_ids

    def test_ich_history_contraindicates_esketamine(self, engine):
        """A history of intracerebral haemorrhage, even resolved, blocks esketamine."""
        from ketacds import Coding, Condition

        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        ich = Condition(code=Coding(system="icd-10-cm", code="I61.9"), clinical_status="resolved")
        result = engine.assess(attrs.evolve(record, conditions=(*record.conditions, ich)), context)

        assert ("contraindicated", True) == (result.status, "KCDS-CI-003" in result.rule_ids)

    def test_unknown_jurisdiction_is_an_input_error(self, engine, now):
        """A jurisdiction the rules do not know is refused, not assessed with no rules."""
        record, _ = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")

        with pytest.raises(InputError, match="unknown jurisdiction 'FR'"):
            engine.assess(record, Context(route="esketamine-nasal", jurisdiction="FR", now=now))


class TestBasis:
    def test_findings_cite_their_facts_and_evidence(self, engine):
        """Every finding names its evidence and the input facts it rests on."""
        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        result = engine.assess(record, context)
        facts = {f["id"] for f in engine.facts(record, context).facts}

        for finding in result.findings:
            assert finding.evidence
            assert finding.basis
            assert {b.id for b in finding.basis} <= facts

    def test_chained_finding_cites_the_trials_behind_its_flag(self, engine):
        """TRD candidacy rests on the diagnosis and, through the derived flag, on both trials."""
        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        finding = engine.assess(record, context).finding("KCDS-CAND-002")

        assert ["condition", "trial", "trial"] == [b.type for b in finding.basis]


class TestDeterminism:
    def test_same_input_same_json(self, engine):
        """Two assessments of the same input give byte-identical JSON, digest included."""
        record, context = load_case_file(EXAMPLES / "02-trd-iv-ketamine-obese.yaml")

        assert engine.assess(record, context).to_json() == Engine().assess(record, context).to_json()

    def test_json_round_trips(self, engine):
        """Assessment JSON reads back into an equal Assessment."""
        for name in EXPECTED:
            record, context = load_case_file(EXAMPLES / name)
            result = engine.assess(record, context)

            assert result == Assessment.from_json(result.to_json())

    def test_top_level_keys(self, engine):
        """The JSON has the documented top-level keys."""
        record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
        data = engine.assess(record, context).to_dict()

        assert {
            "status",
            "findings",
            "dose",
            "monitoring",
            "data_gaps",
            "data_quality",
            "provenance",
            "trace",
        } <= set(data)
        assert {"rule_id", "evidence", "basis"} <= set(data["findings"][0])
        assert engine.digest == data["provenance"]["digest"]

    def test_threads_agree_with_sequential_results(self, engine):
        """8 threads × 500 assessments give exactly the sequential results."""
        cases = [load_case_file(EXAMPLES / name) for name in sorted(EXPECTED)]
        work = [cases[i % len(cases)] for i in range(4000)]
        expected = [engine.assess(record, context) for record, context in cases]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda rc: engine.assess(*rc), work))

        assert [expected[i % len(cases)] for i in range(4000)] == results

    def test_one_shot_assess(self):
        """The module-level assess() uses the bundled rules."""
        record, context = load_case_file(EXAMPLES / "04-esketamine-bp-defer.yaml")

        assert "defer" == assess(record, context).status


class TestDigest:
    def test_pinned_digest_is_accepted(self, engine):
        """An Engine pinned to the current digest starts."""
        assert engine.digest == Engine(expected_digest=engine.digest).digest

    def test_other_digest_is_refused(self):
        """An Engine pinned to another digest refuses to start."""
        with pytest.raises(DigestMismatchError, match="refusing to start"):
            Engine(expected_digest="0" * 64)

    def test_digest_is_stable_and_content_based(self, engine):
        """Loading twice gives the same digest; it is a sha256 hex string."""
        assert engine.digest == Engine().digest
        assert 64 == len(engine.digest)


def test_medication_status_matters(engine):
    """A stopped benzodiazepine is not an interaction."""
    record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")
    stopped = attrs.evolve(
        record,
        medications=tuple(
            attrs.evolve(m, status="stopped") if m.name == "Klonopin" else m for m in record.medications
        ),
    )

    assert "KCDS-INT-001" not in engine.assess(stopped, context).rule_ids
    assert isinstance(record.medications[0], Medication)


def test_now_is_an_input_not_the_clock(engine):
    """Age is computed at 'now': the day before a birthday the patient is a year younger."""
    record, context = load_case_file(EXAMPLES / "01-trd-esketamine-us.yaml")  # born 1981-03-14
    before = engine.facts(record, attrs.evolve(context, now=dt.datetime(2026, 3, 13, 12, tzinfo=dt.UTC)))
    on = engine.facts(record, attrs.evolve(context, now=dt.datetime(2026, 3, 14, 12, tzinfo=dt.UTC)))

    assert (44, 45) == (before.by_id()["patient"]["age_years"], on.by_id()["patient"]["age_years"])
