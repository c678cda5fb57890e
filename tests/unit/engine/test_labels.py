"""FactSet.labels: written on first read, and a mapping that behaves as the dict it was."""

from __future__ import annotations

import copy
import decimal
import pickle
from decimal import Decimal

from ketacds import Engine
from ketacds.engine.labels import Labels
from ketacds.errors import KetacdsError
from ketacds.models.load import load_case
from ketacds.synthetic import synthetic_cases

_CALLS: list[str] = []


def _write(text: str, number: Decimal) -> str:
    _CALLS.append(text)
    return f"{text} {number}"


def _labels() -> Labels:
    dose, weight = (_write, "dose", Decimal("1E+3")), (_write, "weight", Decimal("70.5"))
    return Labels({"b": "plain", "a": dose, "c": weight})


def test_a_label_is_written_once_on_first_read() -> None:
    _CALLS.clear()
    labels = _labels()
    assert _CALLS == []
    assert labels["c"] == "weight 70.5"
    assert labels["c"] == "weight 70.5"
    assert _CALLS == ["weight"]


def test_labels_behave_as_the_dict_of_their_written_text() -> None:
    labels = _labels()
    written = {"b": "plain", "a": "dose 1E+3", "c": "weight 70.5"}
    assert list(labels) == list(written) == ["b", "a", "c"]
    assert len(labels) == 3
    assert "a" in labels
    assert "z" not in labels
    assert labels == written
    assert written == labels
    assert labels == _labels()
    assert labels != {**written, "a": "other"}
    assert dict(labels) == written
    assert list(labels.items()) == list(written.items())
    assert labels.get("z") is None
    assert labels.get("z", "x") == "x"
    assert labels.get("a") == "dose 1E+3"
    assert repr(labels) == repr(written)
    for copied in (pickle.loads(pickle.dumps(_labels())), copy.copy(_labels()), copy.deepcopy(_labels())):
        assert isinstance(copied, Labels)
        assert copied == written
        assert list(copied) == list(written)


def test_a_label_is_written_as_in_the_exact_context_whatever_the_readers() -> None:
    labels = _labels()
    with decimal.localcontext() as context:
        context.capitals = 0
        context.prec = 2
        assert labels["a"] == "dose 1E+3"


def test_the_labels_of_a_fact_set_are_those_written_at_once() -> None:
    engine = Engine()
    for data in list(synthetic_cases(40)):
        try:
            record, context = load_case(data)
            facts = engine.facts(record, context)
        except KetacdsError:  # a refused case has no facts
            continue
        assert set(facts.labels) == {fact["id"] for fact in facts.facts}
        assert all(isinstance(text, str) and text for text in facts.labels.values())
        assert pickle.loads(pickle.dumps(facts.labels)) == facts.labels
