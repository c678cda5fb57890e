"""Build frozen attrs models from values already checked, without checking them again.

A model's ``__init__`` runs its field validators on every construction. Where the
caller has already checked every value (the case loader parses each field into the
type its model asks for; the assembler copies a rule's texts checked when the ruleset
loaded), :func:`trusted_constructor` builds the same instance without them: the
fields are set in order and ``__attrs_post_init__`` (the checks across fields) still
runs. Nothing is switched off process-wide (``attrs.validators.set_disabled`` would
switch off every validator in every thread), so a threaded server may use it freely.

The constructor takes every field positionally, in the class's field order
(``attrs.fields(cls)``), defaults included, and converts nothing: a class with a
converter is refused. Each field is set through its slot's own setter (the member
descriptor ``object.__setattr__`` would look up and call), without the lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any, TypeVar

import attrs

__all__ = ["trusted_constructor", "trusted_factory"]

T = TypeVar("T")


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """A function building ``cls`` from every field's value, in field order, unvalidated.

    Raises:
        TypeError: ``cls`` is not a frozen, slotted attrs class, or it converts a field,
            hooks attribute setting, caches its hash or runs ``__attrs_pre_init__``
            (what a plain sequence of field assignments would not do).
    """
    frozen = getattr(cls, "__setattr__", None) is not object.__setattr__
    if not attrs.has(cls) or "__slots__" not in vars(cls) or not frozen:
        raise TypeError(f"{cls.__name__} is not a frozen, slotted attrs class")
    fields = attrs.fields(cls)
    if any(a.converter is not None or a.on_setattr not in (None, attrs.setters.NO_OP) for a in fields):
        raise TypeError(f"{cls.__name__} converts or hooks a field: build it with its own __init__")
    if hasattr(cls, "__attrs_pre_init__") or "_attrs_cached_hash" in getattr(cls, "__slots__", ()):
        raise TypeError(f"{cls.__name__} has a pre-init hook or caches its hash")
    names = [a.name for a in fields]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_setattr": object.__setattr__}
    lines = [f"def build({', '.join(names)}):", "    self = _new(_cls)"]
    for index, name in enumerate(names):
        slot = _slot_of(cls, name)
        if slot is not None:  # the slot's own setter: what object.__setattr__ finds and calls
            namespace[f"_set{index}"] = slot.__set__
            lines.append(f"    _set{index}(self, {name})")
        else:  # pragma: no cover - every field of a slotted attrs class is a slot
            lines.append(f"    _setattr(self, {name!r}, {name})")
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("    self.__attrs_post_init__()")
    lines.append("    return self")
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - our own source, from the class's own field names
    build: Callable[..., T] = namespace["build"]
    build.__qualname__ = build.__name__ = f"trusted_{cls.__name__}"
    return build


def _slot_of(cls: type, name: str) -> Any:
    """The member descriptor of slot ``name`` (on ``cls`` or a base), or None."""
    for klass in cls.__mro__:
        if name in vars(klass):
            found = vars(klass)[name]
            return found if isinstance(found, MemberDescriptorType) else None
    return None


def trusted_factory(cls: type[T], varying: tuple[str, ...]) -> Callable[..., Callable[..., T]]:
    """A function taking every field's value but ``varying``'s (in field order) and returning a builder.

    The builder takes the values of the fields in ``varying`` (in that order) and builds
    ``cls`` as the function of :func:`trusted_constructor` does, with the other fields'
    values given to the factory: for values known long before the rest (a rule's texts,
    once per rule; its Finding's basis, at every assessment), a plain call that sets the
    fields, with no argument tuple joined at every call.

    Raises:
        TypeError: as :func:`trusted_constructor` does, or ``varying`` are not distinct fields of ``cls``.
    """
    trusted_constructor(cls)  # the same refusals
    assert attrs.has(cls)  # (checked there)
    names = [a.name for a in attrs.fields(cls)]
    if not set(varying) <= set(names) or len(set(varying)) != len(varying):
        raise TypeError(f"{varying} are not distinct fields of {cls.__name__}")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [
        f"def factory({', '.join(name for name in names if name not in varying)}):",
        f"    def build({', '.join(varying)}):",
        "        self = _new(_cls)",
    ]
    for index, name in enumerate(names):
        namespace[f"_set{index}"] = _slot_of(cls, name).__set__  # every field is a slot (checked above)
        lines.append(f"        _set{index}(self, {name})")
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("        self.__attrs_post_init__()")
    lines += ["        return self", "    return build"]
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - our own source, from the class's own field names
    factory: Callable[..., Callable[..., T]] = namespace["factory"]
    factory.__qualname__ = factory.__name__ = f"trusted_factory_{cls.__name__}"
    return factory
