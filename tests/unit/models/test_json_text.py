"""Assessment.to_json writes exactly json.dumps of to_dict, whatever it remembers (issue 18)."""

from __future__ import annotations

import json
from decimal import Decimal

import attrs

from ketacds import Engine
from ketacds.errors import KetacdsError
from ketacds.jsoncodec import Codec, TextWriter
from ketacds.models.load import load_case
from ketacds.models.quality import DataQualityIssue
from ketacds.models.results import Assessment, DoseAdvice, DoseOption
from ketacds.models.trusted import trusted_constructor
from ketacds.synthetic import synthetic_cases


def _reference(assessment: Assessment) -> str:
    return json.dumps(assessment.to_dict(), ensure_ascii=False)


def test_to_json_equals_json_dumps_of_to_dict_on_1000_synthetic_patients() -> None:
    engine = Engine()
    compared = 0
    for data in synthetic_cases(1000):
        try:
            assessment = engine.assess(*load_case(data))
        except KetacdsError:
            continue
        for _ in range(2):  # the second time from what was remembered
            assert assessment.to_json() == _reference(assessment)
        assert assessment.to_json(indent=2) == json.dumps(assessment.to_dict(), indent=2, ensure_ascii=False)
        compared += 1
    assert compared > 500


def test_odd_values_are_written_as_json_dumps_writes_them() -> None:
    engine = Engine()
    assessment = engine.assess(*load_case(next(iter(synthetic_cases(1)))))
    option = DoseOption(
        rule_id='r\u00e9\n"x"', label="\u2028 <b>", function="f", dose_mg=Decimal("0.50"), infusion_minutes=40
    )
    odd = attrs.evolve(
        assessment,
        dose=DoseAdvice(route="iv", options=(option,)),
        findings=assessment.findings[:1],
        trace=(),
        monitoring=(),
    )
    assert odd.to_json() == _reference(odd)
    assert Assessment.from_json(odd.to_json()) == odd


def test_a_small_memory_is_emptied_and_stays_exact() -> None:
    writer = TextWriter(Codec(decimals="text"), memo=(DoseOption,), limit=2)
    for number in range(5):
        option = DoseOption(rule_id=f"r{number}", label="l", function="f", dose_mg=None)
        assert writer.dumps(option) == json.dumps(Codec(decimals="text").encode(option), ensure_ascii=False)


def test_equal_copies_of_remembered_parts_are_written_alike() -> None:
    """The memories look values up by identity first: an equal copy (a Finding's evidence
    rebuilt, an Assessment read back from its JSON) is written exactly the same."""
    engine = Engine()
    assessment = engine.assess(*load_case(next(iter(synthetic_cases(1)))))
    text = assessment.to_json()
    copied = attrs.evolve(
        assessment,
        findings=tuple(
            attrs.evolve(f, evidence=tuple(attrs.evolve(e) for e in f.evidence)) for f in assessment.findings
        ),
    )
    assert copied.findings[0].evidence is not assessment.findings[0].evidence
    assert copied.to_json() == text == _reference(copied)
    assert Assessment.from_json(text).to_json() == text


def test_a_small_split_memory_is_emptied_and_stays_exact() -> None:
    codec = Codec(decimals="text")
    writer = TextWriter(codec, split={DoseAdvice: "options"}, limit=2)
    for number in range(5):
        option = DoseOption(rule_id=f"r{number}", label="l", function="f", dose_mg=None)
        advice = DoseAdvice(route=f"iv{number % 3}", options=(option,))
        assert writer.dumps(advice) == json.dumps(codec.encode(advice), ensure_ascii=False)


def test_literal_and_int_fields_are_written_as_json_dumps_writes_them() -> None:
    """Even a value its field's type does not allow (built unvalidated) is written as json.dumps would."""
    codec = Codec(decimals="text")
    writer = TextWriter(codec)
    for severity in ("error", "info", 'odd "\u2028" text'):
        for minutes in (40, -3, 10**30, True, None):
            issue = trusted_constructor(DataQualityIssue)(severity, "c", "m", None, None)
            option = DoseOption(rule_id="r", label="l", function="f", dose_mg=None, infusion_minutes=minutes)
            assert writer.dumps(issue) == json.dumps(codec.encode(issue), ensure_ascii=False)
            assert writer.dumps(option) == json.dumps(codec.encode(option), ensure_ascii=False)
