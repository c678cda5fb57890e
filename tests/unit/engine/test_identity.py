"""Content ids: the fast content text gives exactly the ids the attrs repr gave (issue 18)."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import attrs

from ketacds.engine.identity import _component_id, _content_id, _content_text
from ketacds.models.inputs import Coding, ObservationComponent
from ketacds.models.load import load_case
from ketacds.synthetic import synthetic_cases


def _repr_content_id(kind: str, item: Any) -> str:
    """The content id as it was before issue 18: a digest of attrs' generic repr."""
    digest = hashlib.blake2b(repr(item).encode(), digest_size=6).hexdigest()
    return f"{kind}:{digest}"


def _models(value: Any) -> list[Any]:
    """Every attrs model and every tuple reachable from ``value``, ``value`` included."""
    found = [value]
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            found.extend(_models(getattr(value, field.name)))
    elif isinstance(value, tuple | list):
        for element in value:
            found.extend(_models(element))
    return found


def test_content_ids_equal_the_repr_based_ids_on_2000_synthetic_patients() -> None:
    compared = 0
    for data in synthetic_cases(2000):
        record, context = load_case(data)
        for item in (*_models(record), *_models(context)):
            assert _content_text(item) == repr(item)
            assert _content_id("x", item) == _repr_content_id("x", item)
            compared += 1
    assert compared > 100_000


def test_edge_values_are_written_as_repr() -> None:
    coding = Coding(system="http://snomed.info/sct", code="1'2\"3", display="é\n")
    for value in ((), (coding,), (coding, coding), [coding], [], None, 1.5, coding):
        assert _content_text(value) == repr(value)


def test_a_component_id_is_the_parent_and_eight_digits_of_its_content() -> None:
    code = Coding(system="http://loinc.org", code="8480-6")
    component = ObservationComponent(code=code, value=Decimal("120"))
    expected = _repr_content_id("c", component).split(":")[1][:8]
    assert _component_id("observation:o1", component) == f"observation:o1/{expected}"


def test_datetimes_dates_and_decimals_are_written_as_repr() -> None:
    """The content text's own writers for times and Decimals give exactly their reprs."""
    import datetime as dt
    import random
    from zoneinfo import ZoneInfo

    from ketacds.engine.identity import _decimal_text, _moment_text

    rng = random.Random(18)
    zones = [
        None,
        dt.UTC,
        dt.timezone(dt.timedelta(hours=2)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30), "named"),
        ZoneInfo("Europe/Zurich"),
    ]
    for _ in range(5000):
        moment = dt.datetime(
            rng.randint(1, 9999),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.choice([0, rng.randint(0, 23)]),
            rng.choice([0, rng.randint(0, 59)]),
            rng.choice([0, rng.randint(0, 59)]),
            rng.choice([0, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(zones),
            fold=rng.choice([0, 1]),
        )
        assert _moment_text(moment) == repr(moment)
        assert _moment_text(moment.date()) == repr(moment.date())
    for value in (Decimal("-0"), Decimal("1E+5"), Decimal("0.000001"), Decimal("1E-7"), Decimal("NaN"), None):
        assert _decimal_text(value) == repr(value)


def test_code_like_models_of_two_classes_with_equal_fields_keep_their_own_texts() -> None:
    @attrs.frozen
    class Other:
        system: str
        code: str
        display: str | None = None

    coding = Coding(system="http://loinc.org", code="8480-6")
    other = Other(system="http://loinc.org", code="8480-6")
    for _ in range(2):  # the second time from the memo
        assert _content_text(coding) == repr(coding)
        assert _content_text(other) == repr(other)


def test_a_code_holding_a_str_subclass_is_written_by_its_own_repr() -> None:
    class Shown(str):
        def __repr__(self) -> str:
            return "Shown!"

    plain = Coding(system="http://loinc.org", code="8480-6")
    subclass = Coding(system="http://loinc.org", code=Shown("8480-6"))
    for _ in range(2):  # the second time, the plain one from the memo
        assert _content_text(plain) == repr(plain)
        assert _content_text(subclass) == repr(subclass)
