"""The labels people read beside each fact, written only when one is read.

Building the facts of an assessment names every fact, but an Assessment shows the
labels of only the facts a finding rests on (explanations read more). So a label is
held as what it is written from — a tuple ``(writer, *values)`` of a module-level
function and the immutable values it formats, taken when the fact was built (a fact
dict is changed by later steps; its label describes it as given) — and written on first
read, then kept. A label already written (or cheap to write) is held as its ``str``.

:class:`Labels` is a read-only mapping of fact id to label with a ``dict``'s behaviour
(order of insertion, ``len``, ``in``, ``==`` with any mapping, ``repr``, pickling as
written text): every read sees exactly the text the label would have had if written
at once.

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``,
``labels``); they are not API.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping
from typing import Any

from ketacds.engine.numbers import _EXACT

#: A label as built: its text, or ``(writer, *values)`` that writes it (see :func:`_text`).
_Label = Any


def _text(label: _Label) -> str:
    """The text of a label as built (written now when it is not yet)."""
    if label.__class__ is str:
        return label
    return _written(label)


def _written(label: tuple[Any, ...]) -> str:
    """Write a label held as ``(writer, *values)``, as it is written while facts are built.

    Facts are built in the exact context (``numbers._EXACT``); what a writer does with a
    Decimal depends on the context only through ``capitals`` (``str`` and ``format``;
    rounding names its context), so a reader's context with other capitals is set aside.
    """
    if decimal.getcontext().capitals == _EXACT.capitals:
        return label[0](*label[1:])  # type: ignore[no-any-return]
    with decimal.localcontext(_EXACT):
        return label[0](*label[1:])  # type: ignore[no-any-return]


def _suffixed(label: _Label, suffix: str) -> str:
    """A label with more text after it (a table's figure)."""
    return _text(label) + suffix


class Labels(Mapping[str, str]):
    """Fact id → label, each written on first read and then kept (see the module)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, _Label] | None = None) -> None:
        self._items: dict[str, _Label] = {} if items is None else items

    def __getitem__(self, key: str) -> str:
        label = self._items[key]
        if label.__class__ is str:
            return label
        text = self._items[key] = _written(label)
        return text

    def get(self, key: str, default: Any = None) -> Any:
        """The label of ``key``, or ``default`` when there is none (as ``dict.get``)."""
        if key in self._items:
            return self[key]
        return default

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.written() == (other.written() if isinstance(other, Labels) else dict(other.items()))

    __hash__ = None  # type: ignore[assignment]  # as a dict's: mutable content, no hash

    def __repr__(self) -> str:
        return repr(self.written())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Labels, (self.written(),))

    def written(self) -> dict[str, str]:
        """Every label written, as a plain ``dict`` in the same order."""
        return {key: self[key] for key in self._items}
