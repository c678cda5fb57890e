"""Nothing unseen (issue 14 item 2), over random patients: adding an item the terminology
cannot read never makes the status more reassuring, and an unread active medication never
leaves a reassuring status."""

from __future__ import annotations

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st

from ketacds import Coding, Condition, Engine, Medication, PatientRecord
from strategies import contexts, records

_ENGINE = Engine()
_TABLE = _ENGINE.ruleset.status
_REASSURING = {"cautions", "no-concerns-found"}

# Made-up words that no value set lists (checked below), so an item built from them is unread.
_unknown_words = st.text(alphabet="bcdfghjkqvwxz", min_size=5, max_size=10).map(lambda w: f"zz{w}")


def _unread(name: str) -> bool:
    return not _ENGINE.terminology.is_read(_ENGINE.terminology.tag_text(None, name))


@st.composite
def unknown_medications(draw: st.DrawFn) -> Medication:
    name = draw(_unknown_words)
    strength = draw(st.sampled_from(["", " 5 MG Oral Tablet", " 10 mg tablet bid", " [Brandx]"]))
    assume(_unread(name + strength))
    status = draw(st.sampled_from(["active", "active", "stopped", "completed"]))
    return Medication(name=name + strength, status=status)  # type: ignore[arg-type]


@st.composite
def unknown_conditions(draw: st.DrawFn) -> Condition:
    words = draw(_unknown_words)
    # Sometimes the free text names a concept a rule reads (a synonym), sometimes nothing.
    named = draw(st.sampled_from(["", " after NSTEMI", " with aortic aneurysm", " (COPD)", " brain injury"]))
    code = Coding(
        system="http://snomed.info/sct", code=str(draw(st.integers(10**14, 10**15))), display=words + named
    )
    assume(not _ENGINE.terminology.is_read(_ENGINE.terminology.tag(code, None)))
    status = draw(st.sampled_from(["active", "active", "resolved", "inactive"]))
    return Condition(code=code, clinical_status=status)  # type: ignore[arg-type]


@given(record=records, context=contexts, medication=unknown_medications(), condition=unknown_conditions())
def test_adding_an_unread_item_never_reassures_more(
    record: PatientRecord, context, medication: Medication, condition: Condition
):
    """An unrecognised medication or condition never makes the status less serious."""
    before = _ENGINE.assess(record, context)
    for more in (
        attrs.evolve(record, medications=(*record.medications, medication)),
        attrs.evolve(record, conditions=(*record.conditions, condition)),
    ):
        after = _ENGINE.assess(more, context)
        assert _TABLE.rank(after.status) <= _TABLE.rank(before.status)


@given(record=records, context=contexts, medication=unknown_medications())
def test_an_unread_active_medication_is_never_reassuring(
    record: PatientRecord, context, medication: Medication
):
    """With an active medication nobody reads, the status is never cautions or no-concerns-found,
    and the Assessment names it in data quality."""
    medication = attrs.evolve(medication, status="active")
    result = _ENGINE.assess(attrs.evolve(record, medications=(*record.medications, medication)), context)

    assert result.status not in _REASSURING
    assert any(
        i.code == "unrecognised-medication" and medication.name in i.message for i in result.data_quality
    )
