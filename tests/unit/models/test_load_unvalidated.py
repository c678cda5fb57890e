"""The case loader builds models without their field validators: what it builds must pass them.

``ketacds.models.load`` parses every field into the type and vocabulary its model asks
for and then builds the model by a trusted constructor (no validators run a second
time). These tests hold it to that: every model it returns passes ``attrs.validate``,
for ordinary cases and for every value of every vocabulary, and a value a model's
vocabulary refuses is refused by the loader too.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, get_args

import attrs
import pytest

from ketacds import InputError, load_case
from ketacds.models import inputs
from ketacds.synthetic import synthetic_cases

CONTEXT = {"route": "ketamine-iv", "jurisdiction": "US", "now": "2026-11-21T09:00:00Z"}

#: Every word of every vocabulary of the input models, and a few that are in none.
WORDS = sorted(
    {
        word
        for kind in (
            inputs.Sex,
            inputs.ConditionStatus,
            inputs.MedicationStatus,
            inputs.TrialResponse,
            inputs.TrialEpisode,
            inputs.SubstanceStatus,
            inputs.HepaticClass,
        )
        for word in get_args(kind)
    }
    | {"resolved", "inactive", "Active", "zzz"}
)


def _validate_all(value: Any) -> None:
    """``attrs.validate`` on ``value`` and every model inside it."""
    if attrs.has(type(value)):
        attrs.validate(value)
        for field in attrs.fields(type(value)):
            _validate_all(getattr(value, field.name))
    elif isinstance(value, tuple):
        for item in value:
            _validate_all(item)


def _load(record: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
    return load_case({**record, "context": {**CONTEXT, **(context or {})}})


def test_synthetic_cases_load_into_valid_models() -> None:
    for case in itertools.islice(synthetic_cases(300), 300):
        try:
            loaded = load_case(case)
        except InputError:
            continue
        _validate_all(loaded)


@pytest.mark.parametrize(
    ("collection", "key", "item"),
    [
        ("patient", "sex", None),
        ("patient", "hepatic_class", None),
        ("conditions", "clinical_status", {"name": "x"}),
        ("medications", "status", {"name": "x"}),
        ("allergies", "status", {"name": "x"}),
        ("trials", "response", {"name": "x"}),
        ("trials", "episode", {"name": "x"}),
        ("substance_use", "status", {"name": "x"}),
    ],
)
def test_every_vocabulary_word_is_refused_or_valid(collection: str, key: str, item: Any) -> None:
    for word in WORDS:
        record: dict[str, Any] = {"patient": {}}
        if item is None:
            record["patient"] = {key: word}
        else:
            record[collection] = [{**item, key: word}]
        try:
            loaded = _load(record)
        except InputError:
            continue
        _validate_all(loaded)


def test_every_field_of_every_model_loads_valid() -> None:
    record = {
        "patient": {
            "id": "p",
            "birth_date": "1980-05-01",
            "age_years": 46,
            "sex": "female",
            "weight": {"value": 70, "unit": "kg", "time": "2026-11-20T09:00:00+01:00"},
            "height": "165 cm",
            "pregnant": False,
            "pregnant_time": "2026-11-20T09:00:00Z",
            "lactating": False,
            "hepatic_class": "A",
            "deceased": False,
        },
        "conditions": [
            {"id": "c", "code": {"system": "snomed", "code": "1", "display": "d"}, "onset": "2020-01-01"}
        ],
        "medications": [{"name": "m", "dose": "1.5", "unit": "mg", "frequency": "bid", "as_needed": True}],
        "observations": [
            {
                "name": "bp",
                "time": "2026-11-20T09:00:00Z",
                "components": [{"name": "s", "value": 120, "unit": "mm[Hg]"}],
            }
        ],
        "allergies": [{"name": "a", "status": "inactive"}],
        "trials": [{"name": "t", "dose": 20, "unit": "mg", "weeks": Decimal("6.5"), "adequate_dose": True}],
        "substance_use": [{"name": "alcohol", "status": "former"}],
    }
    context = {
        "setting": "outpatient",
        "plan": {"dose": "0.5 mg/kg", "sessions_per_week": 2, "treatment_week": 1, "session_number": 1},
        "order": {"name": "ketamine", "dose": 35, "unit": "mg", "per_week": 2},
    }
    loaded = _load(record, context)
    _validate_all(loaded)
    assert loaded[0].medications[0].frequency_per_day == Decimal(2)


def test_a_component_without_a_value_is_refused_in_the_models_words() -> None:
    record = {"patient": {}, "observations": [{"name": "bp", "components": [{"name": "s"}]}]}
    with pytest.raises(InputError) as caught:
        _load(record)
    assert str(caught.value).startswith(
        "observations[0].components[0]: (\"'value' must be <class 'decimal.Decimal'>"
    )
