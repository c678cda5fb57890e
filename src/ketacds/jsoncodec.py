"""The one JSON serialiser of ketacds: frozen attrs values to plain JSON data and back.

Two kinds of value are written as JSON: the ruleset's intermediate form
(:mod:`ketacds.ruleset.ir`, whose canonical JSON is hashed into the ruleset digest)
and the Assessment (:mod:`ketacds.models.results`). Both go through a :class:`Codec`
here; they differ only in the options, and those options are part of their formats
(changing one would move the digest, or every Assessment's bytes):

``decimals`` (:data:`DecimalPolicy`)
    ``"text"``: a Decimal is written as its string, ``"0.5"``; the reader knows from
    the field's type that it is a number (the Assessment).
    ``"tagged"``: a Decimal is written as ``{"decimal": "0.5"}``, so that the number
    0.5 and the text "0.5" read back as themselves in fields that may hold either
    (a rule's test values; the ruleset's canonical form).
``sequences``
    ``tuple`` or ``list``: what a tuple field becomes in the plain data (JSON writes
    both as arrays; the Assessment keeps tuples, the canonical form lists).
``sort_keys``
    each mapping's keys in sorted order (the Assessment, whose JSON is written without
    ``sort_keys``) or in field order (the canonical form, hashed with ``sort_keys``).
``include``
    which attributes are written (the canonical form leaves out source locations).
``tags``
    classes whose mappings carry their class name under ``"node"`` (the condition
    nodes of a rule), so that a union of classes reads back as the right one.

Each class gets a converter written out for its own fields, once, from its type hints:
encoding is on the hot path of population runs (one Assessment per patient), and a
generic walk over every value is a few times slower.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs

__all__ = ["Codec", "DecimalPolicy", "TextWriter", "canonical_dumps", "decimal_text"]

#: How a Decimal is written: ``"text"`` (``"0.5"``) or ``"tagged"`` (``{"decimal": "0.5"}``).
DecimalPolicy = Literal["text", "tagged"]

_TAG = "node"


def decimal_text(value: Any) -> Any:
    """A Decimal as its string, any other value as it is (the ``"text"`` policy for one value)."""
    return str(value) if isinstance(value, Decimal) else value


def _decimal_tagged(value: Any) -> Any:
    return {"decimal": str(value)} if isinstance(value, Decimal) else value


def canonical_dumps(data: Any) -> str:
    """Compact JSON with sorted keys and unescaped text: the same data gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _all_attributes(_attribute: attrs.Attribute[Any]) -> bool:
    return True


class Codec:
    """Converts attrs values to plain JSON data (:meth:`encode`) and back (:meth:`decode`).

    See the module documentation for the options.
    """

    def __init__(
        self,
        *,
        decimals: DecimalPolicy,
        sequences: type[tuple[Any, ...]] | type[list[Any]] = tuple,
        sort_keys: bool = True,
        include: Callable[[attrs.Attribute[Any]], bool] = _all_attributes,
        tags: Iterable[type] = (),
    ) -> None:
        self.decimals = decimals
        self.sequences = sequences
        self.sort_keys = sort_keys
        self.include = include
        self.tags: dict[str, type] = {cls.__name__: cls for cls in tags}
        self._decimal = decimal_text if decimals == "text" else _decimal_tagged
        self._converters: dict[type, Callable[[Any], Any]] = {}
        self._decoding: dict[type, tuple[dict[str, Any], list[attrs.Attribute[Any]]]] = {}

    # ------------------------------------------------------------- encoding

    def encode(self, value: Any) -> Any:
        """Plain JSON data for ``value`` (an attrs instance, a tuple or list, or a scalar)."""
        if attrs.has(type(value)):
            converter = self._converters.get(type(value))
            if converter is None:
                converter = self._converter(type(value))
            return converter(value)
        if isinstance(value, tuple | list):
            return self.sequences(self.encode(item) for item in value)
        return self._decimal(value)

    def _fields(self, kind: type) -> list[attrs.Attribute[Any]]:
        fields = [a for a in attrs.fields(kind) if self.include(a)]
        return sorted(fields, key=lambda a: a.name) if self.sort_keys else fields

    def _converter(self, kind: type) -> Callable[[Any], Any]:
        hints = get_type_hints(kind)
        namespace: dict[str, Any] = {"_encode": self.encode, "_decimal": self._decimal}
        namespace["_seq"] = self.sequences
        items = [f"{a.name!r}: {self._expression(hints[a.name], f'o.{a.name}')}" for a in self._fields(kind)]
        if kind.__name__ in self.tags:
            items.append(f"{_TAG!r}: {kind.__name__!r}")
        source = "def convert(o):\n    return {" + ", ".join(items) + "}\n"
        exec(source, namespace)  # noqa: S102 - our own source, built from our own classes' fields
        converter: Callable[[Any], Any] = namespace["convert"]
        self._converters[kind] = converter
        return converter

    def _expression(self, hint: Any, value: str) -> str:
        """Python source converting ``value`` (of type ``hint``) to plain data."""
        origin = get_origin(hint)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(hint) if a is not type(None)]
            if len(options) == 1 and type(None) in get_args(hint):
                inner = self._expression(options[0], "v")
                return value if inner == "v" else f"(None if (v := {value}) is None else {inner})"
            return self._generic(hint, value)
        if origin is tuple:
            args = get_args(hint)
            if len(args) != 2 or args[1] is not Ellipsis:
                return f"_encode({value})"
            inner = self._expression(args[0], "x")
            return f"_seq({value})" if inner == "x" else f"_seq([{inner} for x in {value}])"
        if isinstance(hint, type) and attrs.has(hint):
            return f"_encode({value})"
        if hint is Decimal:
            return f"_decimal({value})"
        if hint in (str, int, bool):
            return value
        return self._generic(hint, value)

    def _generic(self, hint: Any, value: str) -> str:
        # A union of scalars holds no container, so only its decimals need converting;
        # anything else may hold attrs values or tuples.
        args = get_args(hint)
        if args and all(a in (str, int, bool, Decimal, type(None)) for a in args):
            return f"_decimal({value})"
        return f"_encode({value})"

    # ------------------------------------------------------------- decoding

    def decode(self, kind: Any, data: Any) -> Any:
        """Rebuild a value of type ``kind`` from :meth:`encode` data.

        Raises:
            KeyError, TypeError, AttributeError, decimal.InvalidOperation: the data is not
                an encoded ``kind`` (the caller says what it was reading).
        """
        if isinstance(data, dict) and _TAG in data and self.tags:
            cls = self.tags[data[_TAG]]
            return self._decode_attrs(cls, {k: v for k, v in data.items() if k != _TAG})
        if self.decimals == "tagged" and isinstance(data, dict) and set(data) == {"decimal"}:
            return Decimal(data["decimal"])
        origin = get_origin(kind)
        if origin in (Union, types.UnionType) or kind is Any:
            return self._decode_union(kind, data)
        if origin is tuple:
            args = get_args(kind)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self.decode(args[0], item) for item in data)
            return tuple(self.decode(arg, item) for arg, item in zip(args, data, strict=True))
        if isinstance(kind, type) and attrs.has(kind):
            return self._decode_attrs(kind, data)
        if kind is Decimal and self.decimals == "text":
            return Decimal(data)
        return data

    def _decode_union(self, kind: Any, data: Any) -> Any:
        options = [a for a in get_args(kind) if a is not type(None)]
        if data is None or not options:
            return data
        if self.decimals == "text":
            return self.decode(options[0], data)
        # Tagged values carry their own type; a mapping is the attrs member, a list the tuple member.
        members = [arg for arg in options if isinstance(arg, type) and attrs.has(arg)]
        if isinstance(data, dict) and len(members) == 1:
            return self._decode_attrs(members[0], data)
        if isinstance(data, list):
            return tuple(self.decode(Any, item) for item in data)
        return data

    def _decode_attrs(self, cls: type, data: Mapping[str, Any]) -> Any:
        known = self._decoding.get(cls)
        if known is None:  # type hints are evaluated once per class, not once per value
            fields = [a for a in attrs.fields(cls) if self.include(a)]
            known = self._decoding[cls] = (get_type_hints(cls), fields)
        hints, fields = known
        if self.decimals == "text":
            # Every field the data has, and every required one (a KeyError if it is missing).
            wanted = [a for a in fields if a.name in data or a.default is attrs.NOTHING]
        else:
            unknown = set(data) - {a.name for a in fields}
            if unknown:
                raise TypeError(f"unknown fields {sorted(unknown)} for {cls.__name__}")
            wanted = [a for a in fields if a.name in data]
        return cls(**{a.name: self.decode(hints[a.name], data[a.name]) for a in wanted})


class TextWriter:
    """Writes a value as exactly ``json.dumps(codec.encode(value), ensure_ascii=False)``, faster.

    For a codec with decimals as text and sorted keys (the Assessment's). Each class gets
    a writer generated from its type hints, and the text of values that recur from one
    call to the next is remembered:

    ``memo``
        classes whose whole text is remembered (a trace entry, a citation): looked up
        first by the value's identity (the same object recurs: an Assembler reuses its
        parts), then by value (hashing an attrs value runs Python code);
    ``split``
        a class and one field whose value varies (a Finding and its ``basis``): the text
        before and after that field is remembered, by the other fields' values, where
        a field that is not a plain ``str``, ``int`` or ``bool`` (a Finding's evidence
        tuple) is keyed by identity: hashing a tuple of attrs values on every call
        costs more than writing the text again when an equal copy comes along.

    A memory keyed by identity keeps the objects it names alive, so an ``id`` in it is
    never another object's. Each memory is emptied when it holds ``limit`` texts, so
    memory stays flat.
    """

    def __init__(
        self,
        codec: Codec,
        *,
        memo: Iterable[type] = (),
        split: Mapping[type, str] | None = None,
        limit: int = 20_000,
    ) -> None:
        if codec.decimals != "text" or not codec.sort_keys:
            raise ValueError("TextWriter writes only a codec with decimals as text and sorted keys")
        self._codec = codec
        self._memo = frozenset(memo)
        self._split = dict(split or {})
        self._limit = limit
        self._writers: dict[type, Callable[[Any], str]] = {}

    def dumps(self, value: Any) -> str:
        """The JSON text of ``value``: ``json.dumps(codec.encode(value), ensure_ascii=False)``."""
        writer = self._writers.get(type(value))
        if writer is None:
            writer = self._writer(type(value))
        return writer(value)

    def _generic(self, value: Any) -> str:
        return json.dumps(self._codec.encode(value), ensure_ascii=False)

    def _writer(self, kind: type) -> Callable[[Any], str]:
        if not attrs.has(kind):
            writer: Callable[[Any], str] = self._generic
        elif kind in self._split:
            writer = self._split_writer(kind, self._split[kind])
        else:
            writer = self._fields_writer(kind, self._codec._fields(kind), first=True, last=True)
            if kind in self._memo:
                writer = self._remembered(writer)
        self._writers[kind] = writer
        return writer

    def _remembered(self, write: Callable[[Any], str]) -> Callable[[Any], str]:
        texts: dict[Any, str] = {}
        # id(value) -> (value, text): the value is kept so that its id is not reused.
        by_identity: dict[int, tuple[Any, str]] = {}
        limit = self._limit

        def remembered(value: Any) -> str:
            entry = by_identity.get(id(value))
            if entry is not None and entry[0] is value:
                return entry[1]
            text = texts.get(value)
            if text is None:
                if len(texts) >= limit:
                    texts.clear()
                text = texts[value] = write(value)
            if len(by_identity) >= limit:
                by_identity.clear()
            by_identity[id(value)] = (value, text)
            return text

        return remembered

    def _split_writer(self, kind: type, varying: str) -> Callable[[Any], str]:
        fields = self._codec._fields(kind)
        at = [a.name for a in fields].index(varying)
        before = self._fields_writer(kind, fields[:at], first=True, last=False)
        after = self._fields_writer(kind, fields[at + 1 :], first=False, last=True)
        middle = self._value_writer(get_type_hints(kind)[varying])
        key = f"{json.dumps(varying)}: "
        hints = get_type_hints(kind)
        others = [a.name for a in fields if a.name != varying]
        # Plain scalars are keyed by value; anything else by identity, kept alive in the entry.
        held = [name for name in others if not _scalar(hints[name])]
        keyed = "".join(f"_id(o.{name}), " if name in held else f"o.{name}, " for name in others)
        kept = "".join(f"o.{name}, " for name in held)
        namespace: dict[str, Any] = {"_id": id}
        source = f"def key(o):\n    return ({keyed})\ndef kept(o):\n    return ({kept})\n"
        exec(source, namespace)  # noqa: S102 - our own source, built from our own classes' fields
        key_of: Callable[[Any], tuple[Any, ...]] = namespace["key"]
        kept_of: Callable[[Any], tuple[Any, ...]] = namespace["kept"]
        texts: dict[tuple[Any, ...], tuple[str, str, tuple[Any, ...]]] = {}
        limit = self._limit
        separator = ", " if at > 0 else ""

        def write(value: Any) -> str:
            k = key_of(value)
            parts = texts.get(k)
            if parts is None:
                if len(texts) >= limit:
                    texts.clear()
                parts = texts[k] = (before(value) + separator + key, after(value), kept_of(value))
            return parts[0] + middle(getattr(value, varying)) + parts[1]

        return write

    def _fields_writer(
        self, kind: type, fields: list[attrs.Attribute[Any]], *, first: bool, last: bool
    ) -> Callable[[Any], str]:
        """The text of ``fields`` of a ``kind`` value (with the opening and closing brace if asked)."""
        hints = get_type_hints(kind)
        namespace: dict[str, Any] = {}
        pieces = []
        for index, a in enumerate(fields):
            namespace[f"w{index}"] = self._value_writer(hints[a.name])
            comma = ", " if index or not first else ""
            pieces.append(f"{(comma + json.dumps(a.name) + ': ')!r} + w{index}(o.{a.name})")
        if first:
            pieces.insert(0, "'{'")
        if last:
            pieces.append(" '}'")
        body = " + ".join(pieces) if pieces else "''"
        exec(f"def write(o):\n    return {body}\n", namespace)  # noqa: S102 - our own source
        writer: Callable[[Any], str] = namespace["write"]
        return writer

    def _value_writer(self, hint: Any) -> Callable[[Any], str]:
        """A function writing one value of type ``hint``."""
        origin = get_origin(hint)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(hint) if a is not type(None)]
            if len(options) == 1 and type(None) in get_args(hint):
                inner = self._value_writer(options[0])
                return lambda v: "null" if v is None else inner(v)
            return self._generic
        if origin is tuple:
            args = get_args(hint)
            if len(args) != 2 or args[1] is not Ellipsis:
                return self._generic
            item = self._value_writer(args[0])
            return lambda v: "[" + ", ".join([item(x) for x in v]) + "]"
        if isinstance(hint, type) and attrs.has(hint):
            return self.dumps
        if hint is str:
            return _write_str
        if origin is Literal and all(type(a) is str for a in get_args(hint)):
            generic = self._generic
            return lambda v: _encode_basestring(v) if type(v) is str else generic(v)
        if hint is int:
            # What json.dumps writes for an int (a bool, or anything else, goes the generic way).
            generic = self._generic
            return lambda v: int.__repr__(v) if type(v) is int else generic(v)
        if hint is Decimal:
            return lambda v: _write_str(str(v)) if isinstance(v, Decimal) else self._generic(v)
        if hint is bool:
            return lambda v: ("true" if v else "false") if v is True or v is False else self._generic(v)
        return self._generic


def _scalar(hint: Any) -> bool:
    """Whether a field of type ``hint`` holds only ``str``, ``int``, ``bool`` or ``None`` (hashed in C)."""
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return all(a in (str, int, bool, type(None)) for a in args)


def _write_str(value: Any) -> str:
    return _encode_basestring(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring
