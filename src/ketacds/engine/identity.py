"""What a fact is, and how each fact is identified and named.

A fact is a flat ``dict`` (``Fact``). Its id comes from the input's own ``id`` or, when
there is none, from a digest of its content (:func:`_fact_id`), so ids never depend on
the order of the input lists and exact duplicates collapse; a data-quality entry names
the item by that id too (:func:`_stable_path`). Also here: the words that describe an
item in a label (:func:`_describe`) and the key that makes one drug one drug
(:func:`_drug_key`, :func:`_ingredient_key`).

Names with a leading underscore are shared only among the fact-building modules
(``facts``, ``fact_builders``, ``readings``, ``recognition``, ``identity``, ``numbers``);
they are not API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ketacds.models.inputs import (
    Coding,
    ObservationComponent,
)
from ketacds.terminology.valuesets import Terminology, normalise_name

Fact = dict[str, Any]


def _content_id(kind: str, item: Any) -> str:
    # The repr of a frozen attrs model lists every field in a fixed order, and the
    # reprs of str, Decimal, date and datetime are exact: equal content, equal id.
    # ``_content_text`` writes that same repr text, only faster.
    # A copy of an empty 6-byte blake2b is the same hash, made faster than a new one.
    digest = _BLAKE2B_6.copy()
    digest.update(_content_text(item).encode())
    return f"{kind}:{digest.hexdigest()}"


_BLAKE2B_6 = hashlib.blake2b(digest_size=6)  # never updated: only copied (safe between threads)


# The content text of a value: exactly ``repr(value)``, written without attrs' generic
# ``__repr__`` and its guard against cycles (a thread-local set, per object; frozen
# models hold no cycles). One writer per attrs class, generated on first use from the
# same fields in the same order as attrs' own repr, writing by ``repr`` each field whose
# type holds no model; any other type (and any attrs class whose repr is not attrs'
# plain one) is written by ``repr``. About a fifth less time than attrs' repr.
_WRITERS: dict[type, Callable[[Any], str]] = {}


def _content_text(value: Any) -> str:
    writer = _WRITERS.get(type(value))
    if writer is None:
        writer = _WRITERS[type(value)] = _writer_for(type(value))
    return writer(value)


def _sequence_text(value: tuple[Any, ...] | list[Any]) -> str:
    inner = ", ".join([_content_text(element) for element in value])
    if isinstance(value, list):
        return f"[{inner}]"
    return f"({inner},)" if len(value) == 1 else f"({inner})"


def _may_hold_models(hint: Any) -> bool:
    """Whether a field of type ``hint`` may hold an attrs model or a sequence (else ``repr`` writes it)."""
    if hint in (str, int, bool, float, Decimal, dt.date, dt.datetime, type(None)):
        return False
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, typing.Literal):
        return origin is not typing.Literal and any(_may_hold_models(a) for a in args)
    return True


def _only(hint: Any, allowed: tuple[type, ...]) -> bool:
    """Whether ``hint`` is one of ``allowed``, or a union of them."""
    if hint in allowed:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(arg in allowed for arg in typing.get_args(hint))
    return False


def _decimal_text(value: Any) -> str:
    # ``repr`` of a Decimal is ``Decimal('<str>')`` (both in the current context's
    # capitals), written here three times faster; any other value by its own repr.
    return "Decimal('" + str(value) + "')" if value.__class__ is Decimal else repr(value)


def _moment_text(value: Any) -> str:
    # ``repr`` of a ``datetime`` or ``date`` (exactly those classes), as C's datetime
    # writes it: seconds only when there are seconds or microseconds, microseconds only
    # when not zero, then ``fold`` when 1 and ``tzinfo`` by its own repr. Any other value
    # by its own repr.
    cls = value.__class__
    if cls is dt.datetime:
        if value.microsecond:
            text = (
                f"datetime.datetime({value.year}, {value.month}, {value.day}, {value.hour}, "
                f"{value.minute}, {value.second}, {value.microsecond}"
            )
        elif value.second:
            text = (
                f"datetime.datetime({value.year}, {value.month}, {value.day}, {value.hour}, "
                f"{value.minute}, {value.second}"
            )
        else:
            text = f"datetime.datetime({value.year}, {value.month}, {value.day}, {value.hour}, {value.minute}"
        if value.fold:
            text += f", fold={value.fold}"
        zone = value.tzinfo
        if zone is not None:
            text += ", tzinfo=datetime.timezone.utc" if zone is _UTC else f", tzinfo={zone!r}"
        return text + ")"
    if cls is dt.date:
        return f"datetime.date({value.year}, {value.month}, {value.day})"
    return repr(value)


_UTC = dt.UTC

#: How many content texts of one code-like model class (every field a ``str`` or
#: ``None``: a Coding) are remembered, by their field values: a population repeats its
#: codes. Each class's memo is emptied when full (bounded); texts are immutable strings.
_CODES_SIZE = 4096


def _writer_for(cls: type) -> Callable[[Any], str]:
    if cls is tuple or cls is list:
        return _sequence_text
    fields = getattr(cls, "__attrs_attrs__", None)
    code = getattr(getattr(cls, "__repr__", None), "__code__", None)
    if (
        fields is None
        or code is None
        or not code.co_filename.startswith("<attrs generated")
        or any(f.repr is not True and f.repr is not False for f in fields)
        or any(not f.init for f in fields if f.repr)
    ):
        return repr
    name = cls.__qualname__.rsplit(">.", 1)[-1]
    hints = typing.get_type_hints(cls)
    shown = [f for f in fields if f.repr]
    nested = [f.name for f in shown if _may_hold_models(hints.get(f.name, Any))]
    decimals = [f.name for f in shown if _only(hints.get(f.name, Any), (Decimal, type(None)))]
    moments = [f.name for f in shown if _only(hints.get(f.name, Any), (dt.datetime, dt.date, type(None)))]
    # A field that may hold a model is written by _text, but None and () as repr writes
    # them; a Decimal field by _decimal and a datetime or date by _moment (exactly their reprs).
    lines = [
        f"    v_{field} = self.{field}\n"
        + (
            f"    v_{field} = '()' if v_{field} == () else _text(v_{field})\n"
            if typing.get_origin(hints.get(field)) is tuple
            else f"    v_{field} = 'None' if v_{field} is None else _text(v_{field})\n"
        )
        for field in nested
    ]
    parts = ", ".join(
        f"{f.name}={{v_{f.name}}}"
        if f.name in nested
        else f"{f.name}={{_decimal(self.{f.name})}}"
        if f.name in decimals
        else f"{f.name}={{_moment(self.{f.name})}}"
        if f.name in moments
        else f"{f.name}={{self.{f.name}!r}}"
        for f in shown
    )
    source = f"def write(self):\n{''.join(lines)}    return f'{name}({parts})'\n"
    if shown and all(_only(hints.get(f.name, Any), (str, type(None))) for f in shown):
        # Code-like: remembered by its field values when each is a plain ``str`` or None
        # (equal values, equal reprs); a ``str`` subclass is written, never remembered.
        key = ", ".join(f"self.{f.name}" for f in shown)
        plain = " and ".join(f"(self.{f.name} is None or self.{f.name}.__class__ is str)" for f in shown)
        source = (
            f"def write(self):\n"
            f"    if not ({plain}):\n        return f'{name}({parts})'\n"
            f"    key = ({key},)\n    text = _codes.get(key)\n"
            f"    if text is None:\n"
            f"        text = f'{name}({parts})'\n"
            f"        if len(_codes) >= _size:\n            _codes.clear()\n"
            f"        _codes[key] = text\n    return text\n"
        )
    namespace: dict[str, Any] = {
        "_text": _content_text,
        "_decimal": _decimal_text,
        "_moment": _moment_text,
        "_codes": {},  # this class's own memo
        "_size": _CODES_SIZE,
    }
    exec(compile(source, f"<content text of {name}>", "exec"), namespace)  # noqa: S102 - generated from field names
    writer: Callable[[Any], str] = namespace["write"]
    return writer


def _fact_id(kind: str, item: Any) -> str:
    explicit = getattr(item, "id", None)
    if explicit:
        return f"{kind}:{explicit}"
    # _content_id(kind, item), written out: one call per item fewer on the hot path.
    writer = _WRITERS.get(item.__class__)
    if writer is None:
        return _content_id(kind, item)
    digest = _BLAKE2B_6.copy()
    digest.update(writer(item).encode())
    return f"{kind}:{digest.hexdigest()}"


def _describe(code: Coding | None, name: str | None) -> str:
    if name:
        return name
    assert code is not None  # the models require a code or a name
    return code.display or f"{code.system.rsplit('/', 1)[-1]} {code.code}"


def _drug_key(code: Coding | None, name: str | None) -> str:
    if name:
        key = _DRUG_KEYS.get(name)
        if key is None:
            key = normalise_name(name)
            if len(_DRUG_KEYS) >= _DRUG_KEYS_SIZE:
                _DRUG_KEYS.clear()
            _DRUG_KEYS[name] = key
        return key
    return f"{code.system}|{code.code}" if code else ""


#: :func:`normalise_name` of the drug names read (a population repeats its drugs),
#: emptied when full (bounded); keys and values are immutable strings.
_DRUG_KEYS: dict[str, str] = {}
_DRUG_KEYS_SIZE = 4096


def _component_id(parent: str, component: ObservationComponent) -> str:
    """The fact id of one component of a panel observation (from its own content)."""
    # _content_id("c", component), its digest's first 8 hex digits, written out.
    digest = _BLAKE2B_6.copy()
    digest.update(_content_text(component).encode())
    return f"{parent}/{digest.hexdigest()[:8]}"


def _ingredient_key(
    terminology: Terminology, code: Coding | None, name: str | None, parts: tuple[str, ...] = ()
) -> str:
    """One drug, one key: the ingredient when the value sets name exactly one, else the name or code.

    So a brand and its generic (``Zoloft``, ``sertraline 100 mg``) are one drug, and so
    are a name and an ATC code whose display the value sets tie to that ingredient
    (``escitalopram``, ATC ``N06AB10``).

    ``parts``: the parts of a combination name (``recognition._combination_parts``). With
    two or more, the key is the combination's antidepressants: each part a trial rule
    reads, as its ingredient (or, when the value sets name none or several, its folded
    text), without repeats, sorted and joined by ``+``
    (``ingredients:bupropion+escitalopram``). So one combination written in another
    order, with ``and`` or with brands (``Lexapro and Wellbutrin``) is one drug. A part no
    trial rule reads (``lithium``, ``olanzapine``, an unknown ``foozapine``: reported by
    the recognition stage) is left out, as the rules count only antidepressants: it can
    only make two trials one drug, never one drug two. A combination with one
    antidepressant is that antidepressant's key.
    """
    if len(parts) > 1:
        keys: dict[str, str] = {}  # the part's key in the combination: its key alone
        seen = terminology.seen_on("trial")
        for part in parts:
            if seen.isdisjoint(terminology.tag_text(None, part)):
                continue
            found = terminology.ingredients(None, part)
            if len(found) == 1:
                keys[found[0]] = f"ingredient:{found[0]}"
            else:
                keys[normalise_name(part)] = _drug_key(None, part)
        if len(keys) > 1:
            return "ingredients:" + "+".join(sorted(keys))
        if keys:
            return next(iter(keys.values()))
    ingredients = terminology.ingredients(code, name)
    return f"ingredient:{ingredients[0]}" if len(ingredients) == 1 else _drug_key(code, name)


def _stable_path(path: str, fact_id: str) -> str:
    """``medications[2]`` as ``medications[<id>]``: the item's own id (or content digest).

    So a data-quality entry never depends on the order of the input lists.
    """
    if not path.endswith("]") or "[" not in path:
        return path
    return f"{path.split('[', 1)[0]}[{fact_id.split(':', 1)[1]}]"
