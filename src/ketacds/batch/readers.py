"""Which readers a batch run tries, in which order, and plug-in readers.

The readers and their protocol are :mod:`ketacds.cases` (re-exported here, where they
lived before). Plug-ins come in through :func:`register_reader` or the
``ketacds.batch_readers`` entry-point group: an entry point names a
:class:`~ketacds.cases.Reader` instance (or a class to instantiate). Plug-ins are tried
before the built-in readers.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ketacds.cases import CaseData, CaseFilesReader, Item, NdjsonReader, Reader, files_in, read_json
from ketacds.errors import InputError

__all__ = [
    "ENTRY_POINT_GROUP",
    "CaseData",
    "CaseFilesReader",
    "Item",
    "NdjsonReader",
    "Reader",
    "decode_case",
    "files_in",
    "known_readers",
    "missing_context",
    "read_json",
    "reader_for",
    "register_reader",
]

#: The entry-point group plug-in readers register under.
ENTRY_POINT_GROUP = "ketacds.batch_readers"


_registered: list[Reader] = []
_plugins_loaded = False


def register_reader(reader: Reader) -> None:
    """Add a reader, tried before the built-in ones (later registrations first).

    Raises:
        TypeError: ``reader`` does not have the :class:`Reader` methods.
    """
    if not isinstance(reader, Reader):
        raise TypeError(f"{reader!r} is not a batch Reader (name, detect, count, items, decode)")
    _registered.insert(0, reader)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        loaded = entry.load()
        register_reader(loaded() if isinstance(loaded, type) else loaded)


def known_readers() -> tuple[Reader, ...]:
    """Every known reader, in the order they are tried: plug-ins, then built-in."""
    _load_plugins()
    from ketacds.batch.fhir_readers import FhirBulkReader, FhirBundlesReader

    # The FHIR directory readers before case-files, which would take a directory of Bundles.
    return (*_registered, NdjsonReader(), FhirBulkReader(), FhirBundlesReader(), CaseFilesReader())


def reader_for(path: Path, name: str | None = None) -> Reader:
    """The reader named ``name``, or else the first that detects ``path``.

    Raises:
        InputError: no reader has that name, or none can read ``path``.
    """
    known = known_readers()
    if name is not None:
        for reader in known:
            if reader.name == name:
                return reader
        names = ", ".join(sorted({r.name for r in known}))
        raise InputError("--input-format", f"unknown input format {name!r}; known: {names}")
    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    for reader in known:
        if reader.detect(path):
            return reader
    names = ", ".join(r.name for r in known)
    raise InputError(str(path), f"no reader recognises this input (tried {names}); give --input-format")


def decode_case(reader: Reader, payload: Any, engine: Any) -> CaseData:
    """Decode one payload, giving the reader the worker's Engine if it asks for one."""
    with_engine = getattr(reader, "decode_with_engine", None)
    if with_engine is not None:
        case: CaseData = with_engine(payload, engine)
        return case
    return reader.decode(payload)


def missing_context(reader: Reader, context: Mapping[str, Any]) -> list[str]:
    """The context fields ``reader``'s input never carries and ``context`` does not give."""
    return [key for key in getattr(reader, "context_required", ()) if context.get(key) is None]
