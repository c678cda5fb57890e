"""Nothing unseen, over random patients: taking data away, or making it older or untimed,
never makes the answer more reassuring (issue 14, items 3 and 5).

"Reassuring" is ``cautions`` or ``no-concerns-found``. A datum here is a measured or
recorded attribute whose absence the rules must see: a patient field (age, birth date,
sex, weight, height) or the readings of one kind. (Taking away a recorded *harm*, such
as a condition, rightly changes the answer: the engine cannot see what is not there.
Taking away, or ageing past another, one reading of several rightly lets the other
speak: the latest current reading counts. Neither is what these properties test.)
"""

from __future__ import annotations

import datetime as dt

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from ketacds import Context, Engine, InputError, PatientRecord
from strategies import NOW, contexts, records, seen_records

_ENGINE = Engine()
# Mostly routes and jurisdictions where a reassuring status is reachable (IV ketamine is
# off-label everywhere, so at best specialist-review), and some of every kind.
_SEEN_CONTEXTS = st.builds(
    Context,
    route=st.sampled_from(["esketamine-nasal", "ketamine-other"]),
    jurisdiction=st.sampled_from(["US", "EU", "DE"]),
    now=st.just(NOW),
)
_CONTEXTS = st.one_of(_SEEN_CONTEXTS, _SEEN_CONTEXTS, _SEEN_CONTEXTS, contexts)
_RECORDS = st.one_of(seen_records, seen_records, seen_records, records)
_REASSURING = ("cautions", "no-concerns-found")
# A counterexample needs a record one step from reassuring and the right datum drawn:
# at least 120 examples, so that these properties fail on ketacds-core 0.3.0 at once
# (measured: with 40, only about one run in three did).
_AT_LEAST = settings(max_examples=max(settings.default.max_examples, 120))
_PATIENT_FIELDS = ("age_years", "birth_date", "sex", "weight", "height")


def _status(record: PatientRecord, context) -> str | None:
    try:
        return _ENGINE.assess(record, context).status
    except InputError:
        return None  # refused loudly: never a reassuring answer


def _kinds(record: PatientRecord) -> set[str]:
    tag = _ENGINE.terminology.tag
    return {
        vs
        for o in record.observations
        for part in ((o,) if o.value is not None else ()) + o.components
        for vs in tag(part.code, part.name)
    }


def _without_kind(record: PatientRecord, kind: str) -> PatientRecord:
    """The record without any reading (or panel component) of ``kind``."""
    tag = _ENGINE.terminology.tag
    kept = []
    for o in record.observations:
        components = tuple(c for c in o.components if kind not in tag(c.code, c.name))
        value = o.value if o.value is None or kind not in tag(o.code, o.name) else None
        if value is not None or components:
            kept.append(attrs.evolve(o, value=value, components=components))
    return attrs.evolve(record, observations=tuple(kept))


def _removals(record: PatientRecord) -> list[PatientRecord]:
    """Every record with exactly one datum taken away: a patient field, or every reading of
    one kind (taking one reading of several leaves an earlier one current, rightly)."""
    out = [
        attrs.evolve(record, patient=attrs.evolve(record.patient, **{name: None}))
        for name in _PATIENT_FIELDS
        if getattr(record.patient, name) is not None
    ]
    return out + [_without_kind(record, kind) for kind in sorted(_kinds(record))]


@_AT_LEAST
@given(record=_RECORDS, context=_CONTEXTS, data=st.data())
def test_removing_a_datum_never_reassures(record: PatientRecord, context, data):
    """Taking away one patient field, observation or component never turns a
    non-reassuring status into a reassuring one."""
    before = _status(record, context)
    if before is None or before in _REASSURING:
        return
    candidates = _removals(record)
    if not candidates:
        return
    after = _status(data.draw(st.sampled_from(candidates)), context)

    assert after not in _REASSURING, f"{before} became {after}"


def _replace_reading(record: PatientRecord, index: int, **changes) -> PatientRecord:
    changed = attrs.evolve(record.observations[index], **changes)
    return attrs.evolve(
        record, observations=(*record.observations[:index], changed, *record.observations[index + 1 :])
    )


@_AT_LEAST
@given(record=_RECORDS, context=_CONTEXTS, data=st.data())
def test_untiming_a_reading_never_reassures(record: PatientRecord, context, data):
    """Removing an observation's time never turns a non-reassuring status into a reassuring one."""
    if not record.observations:
        return
    before = _status(record, context)
    if before is None or before in _REASSURING:
        return
    index = data.draw(st.integers(0, len(record.observations) - 1))
    after = _status(_replace_reading(record, index, time=None), context)

    assert after not in _REASSURING, f"{before} became {after}"


@_AT_LEAST
@given(
    record=_RECORDS,
    context=_CONTEXTS,
    data=st.data(),
    hours=st.one_of(st.integers(1, 48), st.integers(49, 24 * 400)),
)
def test_ageing_a_reading_never_reassures(record: PatientRecord, context, data, hours: int):
    """Moving a timed observation (and the ones before it) into the past never turns a
    non-reassuring status into a reassuring one."""
    timed = [i for i, o in enumerate(record.observations) if o.time is not None]
    if not timed:
        return
    before = _status(record, context)
    if before is None or before in _REASSURING:
        return
    index = data.draw(st.sampled_from(timed))
    moment = record.observations[index].time
    assert moment is not None
    # The reading and every earlier one move back together, so no reading overtakes
    # another (a newer reading rightly speaks for an older one).
    aged = tuple(
        attrs.evolve(o, time=o.time - dt.timedelta(hours=hours))
        if o.time is not None and o.time <= moment
        else o
        for o in record.observations
    )
    after = _status(attrs.evolve(record, observations=aged), context)

    assert after not in _REASSURING, f"{before} became {after}"


@_AT_LEAST
@given(record=_RECORDS, context=_CONTEXTS, hours=st.integers(1, 24 * 400))
def test_ageing_every_reading_never_reassures(record: PatientRecord, context, hours: int):
    """Every reading older by the same amount never reassures more."""
    before = _status(record, context)
    if before is None or before in _REASSURING:
        return
    aged = tuple(
        attrs.evolve(o, time=o.time - dt.timedelta(hours=hours)) if o.time is not None else o
        for o in record.observations
    )
    after = _status(attrs.evolve(record, observations=aged), context)

    assert after not in _REASSURING, f"{before} became {after}"
