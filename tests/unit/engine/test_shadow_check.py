"""The operators' shadow check (``verify_sample``, ``--verify-sample``): the reference
evaluator re-runs a deterministic sample of assessments and any disagreement fails loudly.

A disagreement cannot happen with a correct driver, so the tests that need one inject a
fault into the durable encoding (the one place a mock is used): condition facts reach
durable_rules without their value-set properties, as if a fact had been lost.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import write_cases
from ketacds import Engine, VerificationError, load_case_file
from ketacds.cli import main
from ketacds.engine.backends.durable.encoding import FactEncoder
from support import EXAMPLES

CASE = EXAMPLES / "02-trd-iv-ketamine-obese.yaml"


@pytest.fixture
def lose_conditions(monkeypatch):
    """durable_rules gets condition facts stripped of their value sets (a lost-fact stand-in)."""
    batch = FactEncoder.batch

    def stripped(self, *args, **kwargs):
        texts, numbered, absent = batch(self, *args, **kwargs)
        for index, fact in enumerate(numbered.values()):
            if fact["t"] == "condition":
                texts[index] = re.sub(r',"vs:[^"]*":true', "", texts[index])
        return texts, numbered, absent

    monkeypatch.setattr(FactEncoder, "batch", stripped)


def test_a_disagreement_is_a_verification_error_naming_the_rules(lose_conditions):
    record, context = load_case_file(CASE)
    with Engine(verify_sample=1.0) as engine, pytest.raises(VerificationError, match="shadow check") as info:
        engine.assess(record, context)

    assert info.value.rule_ids
    assert all(rule_id.startswith("KCDS-") for rule_id in info.value.rule_ids)
    assert ", ".join(info.value.rule_ids) in str(info.value)


def test_without_the_check_the_fault_goes_unseen(lose_conditions):
    """The reason the check exists: the same fault with verify_sample=0 returns an answer."""
    record, context = load_case_file(CASE)
    with Engine() as engine:
        assert engine.assess(record, context).status


def test_agreement_gives_the_same_assessment():
    record, context = load_case_file(CASE)
    with Engine(verify_sample=1.0) as checked, Engine() as plain:
        assert plain.assess(record, context) == checked.assess(record, context)


def test_the_sample_is_a_deterministic_fraction_of_the_inputs():
    """Chosen by a hash of the input: the same input always, about RATE of distinct inputs."""
    import attrs

    record, context = load_case_file(CASE)
    engine = Engine(verify_sample=0.25)
    inputs = [attrs.evolve(record, patient=attrs.evolve(record.patient, id=f"p{n}")) for n in range(2000)]
    chosen = [engine.sampled(r, context) for r in inputs]

    another = Engine(verify_sample=0.25)  # one more Engine, not one per input (each loads the rules)
    assert chosen == [another.sampled(r, context) for r in inputs]
    assert 0.20 < sum(chosen) / len(chosen) < 0.30
    never, always = Engine(verify_sample=0.0), Engine(verify_sample=1.0)
    assert not any(never.sampled(r, context) for r in inputs[:50])
    assert all(always.sampled(r, context) for r in inputs[:50])


def test_the_rate_is_a_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        Engine(verify_sample=1.5)


class TestCommandLine:
    def test_assess_passes_when_the_engines_agree(self):
        result = CliRunner().invoke(main, ["assess", "--verify-sample", "1", str(CASE)])

        assert 0 == result.exit_code, result.output

    def test_assess_exits_3_naming_the_rules_when_they_disagree(self, lose_conditions):
        result = CliRunner().invoke(main, ["assess", "--verify-sample", "1", str(CASE)])

        assert 3 == result.exit_code
        assert "shadow check" in result.output
        assert "KCDS-" in result.output

    def test_a_rate_outside_0_to_1_is_refused(self):
        result = CliRunner().invoke(main, ["assess", "--verify-sample", "2", str(CASE)])

        assert 2 == result.exit_code

    def test_batch_passes_when_the_engines_agree(self, tmp_path: Path):
        source = write_cases(tmp_path / "cases.ndjson", 6)
        result = CliRunner().invoke(
            main,
            ["batch", str(source), "--out", str(tmp_path / "out"), "--workers", "1", "--verify-sample", "1"],
        )

        assert 0 == result.exit_code, result.output

    def test_batch_exits_4_with_the_disagreements_in_errors_ndjson(self, tmp_path: Path, lose_conditions):
        source = write_cases(tmp_path / "cases.ndjson", 6)
        out = tmp_path / "out"
        result = CliRunner().invoke(
            main,
            ["batch", str(source), "--out", str(out), "--workers", "1", "--quiet", "--verify-sample", "1"],
        )
        errors = [json.loads(line) for line in (out / "errors.ndjson").read_text().splitlines()]

        assert 4 == result.exit_code
        assert "shadow check failed" in result.output
        assert errors
        assert {"VerificationError"} == {e["error"] for e in errors}
