"""Where batch input comes from: pluggable readers that turn a path into cases.

A reader splits its input into :class:`Item` s, in a fixed order, cheaply and in the
main process (an NDJSON line, the text of a file), and turns one item into a case in
a worker process (:meth:`Reader.decode`), where parsing costs are shared out. Two
readers ship with ketacds:

``ndjson``
    one case per line, in the shape ``ketacds assess`` reads (patient record keys
    plus an optional ``context``); blank lines are skipped.
``case-files``
    a directory of case files (``*.yaml``, ``*.yml``, ``*.json``), one case per file,
    taken in file-name order.
``fhir-bundles`` and ``fhir-bulk``
    a directory of FHIR R4 Bundles, or a FHIR Bulk Data export (NDJSON files of
    resources, grouped by patient): see :mod:`ketacds.batch.fhir_readers`.

More plug in through :func:`register_reader` or the ``ketacds.batch_readers``
entry-point group: an entry point names a :class:`Reader` instance (or a class to
instantiate). Plug-ins are tried before the built-in readers. A reader and its
payloads must pickle (a module-level class; payloads of plain data), because items
travel to worker processes and to Dask workers, which may be other machines: read
files in :meth:`Reader.items`, not in :meth:`Reader.decode`.

Two optional attributes a reader may have: ``context_required``, the context fields
its input never carries (a run without defaults for them is refused before it starts),
and ``decode_with_engine(payload, engine)``, used instead of ``decode`` when the
reader needs the worker's Engine (the FHIR readers read codes with its value sets).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from ketacds import limits
from ketacds.errors import InputError
from ketacds.models.inputs import PatientRecord
from ketacds.models.load import decode_text, load_record, parse_document

__all__ = [
    "ENTRY_POINT_GROUP",
    "CaseFilesReader",
    "Item",
    "NdjsonReader",
    "Reader",
    "decode_case",
    "known_readers",
    "missing_context",
    "reader_for",
    "register_reader",
]

#: The entry-point group plug-in readers register under.
ENTRY_POINT_GROUP = "ketacds.batch_readers"

#: What a reader makes of one item: the patient record, and the case's own context
#: data (possibly empty; the batch's defaults fill it in).
Case = tuple[PatientRecord, Mapping[str, Any]]


@attrs.frozen
class Item:
    """One unit of input: what becomes one line of output.

    Attributes:
        index: its position in the input, from 0 (the order of the output).
        source: where it came from, for people: ``cases.ndjson:18``, ``cases/p1.yaml``.
        payload: plain, picklable data that :meth:`Reader.decode` turns into a case.
    """

    index: int
    source: str
    payload: Any


@runtime_checkable
class Reader(Protocol):
    """Reads one kind of batch input. See the module documentation."""

    #: A short name, for ``--input-format`` and the run manifest.
    name: str

    def detect(self, path: Path) -> bool:
        """Whether this reader can read ``path`` (used when no format is given)."""

    def count(self, path: Path) -> int | None:
        """How many items :meth:`items` will yield, if cheap to know (for the progress bar)."""

    def items(self, path: Path) -> Iterator[Item]:
        """The items of ``path``, numbered from 0, always in the same order."""

    def decode(self, payload: Any) -> Case:
        """Turn one item's payload into a case.

        Raises:
            InputError: the item is not a valid case (the batch records it and goes on).
        """


def _case_from_data(data: Any, where: str) -> Case:
    if not isinstance(data, Mapping):
        raise InputError(where, f"expected a case (a mapping), got {type(data).__name__}")
    context = data.get("context") or {}
    if not isinstance(context, Mapping):
        raise InputError("context", f"expected a mapping, got {type(context).__name__}")
    return load_record(data), context


class NdjsonReader:
    """Cases as NDJSON: one JSON object per line (blank lines are skipped)."""

    name = "ndjson"

    def detect(self, path: Path) -> bool:
        """Files named ``*.ndjson``, ``*.jsonl`` or ``*.json-seq``."""
        return path.is_file() and path.suffix.lower() in (".ndjson", ".jsonl", ".json-seq")

    def count(self, path: Path) -> int | None:
        """The number of non-blank lines."""
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def items(self, path: Path) -> Iterator[Item]:
        """Each non-blank line, as bytes (parsed in the worker)."""
        index = 0
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield Item(index, f"{path.name}:{number}", line)
                    index += 1

    def decode(self, payload: Any) -> Case:
        """Parse one line (numbers as exact decimals) and read the case."""
        return _case_from_data(read_json(payload, "(line)"), "(line)")


def read_json(payload: str | bytes, where: str) -> Any:
    """One JSON document (an NDJSON line, a file's bytes) as :func:`parse_document` reads JSON.

    Raises:
        InputError: not UTF-8, not JSON, a duplicate key, or past a limit (field path).
    """
    if isinstance(payload, bytes):
        if len(payload) > limits.MAX_DOCUMENT_BYTES:
            raise InputError(where, f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB")
        payload = decode_text(payload, where)
    try:
        data = limits.loads_json(payload)
    except limits.JsonProblem as error:
        line = f":{error.line}" if error.line and error.line > 1 else ""
        raise InputError(f"{where}{line}", error.reason) from None
    problem = limits.find_problem(data)
    if problem is not None:
        raise InputError(*problem)
    return data


def files_in(directory: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files directly in ``directory`` whose suffix is one of ``suffixes`` (any case), by name."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


class CaseFilesReader:
    """A directory of case files (YAML or JSON), one case per file, in file-name order."""

    name = "case-files"
    suffixes = (".yaml", ".yml", ".json")

    def _files(self, path: Path) -> list[Path]:
        return files_in(path, self.suffixes)

    def detect(self, path: Path) -> bool:
        """Directories holding at least one case file."""
        return path.is_dir() and bool(self._files(path))

    def count(self, path: Path) -> int | None:
        """The number of case files."""
        return len(self._files(path))

    def items(self, path: Path) -> Iterator[Item]:
        """Each file's name and text (read here, so that workers need no shared disk)."""
        for index, file in enumerate(self._files(path)):
            text: str | None = None
            problem: str | None = None
            try:
                if file.stat().st_size > limits.MAX_DOCUMENT_BYTES:
                    problem = f"larger than {limits.MAX_DOCUMENT_BYTES // 2**20} MiB"
                else:
                    text = decode_text(file.read_bytes(), "(file)")
            except OSError as error:
                problem = f"cannot read file: {error.strerror}"
            except InputError as error:
                problem = error.reason
            yield Item(index, file.name, (file.suffix.lower(), text, problem))

    def decode(self, payload: Any) -> Case:
        """Parse the file's text as JSON or YAML and read the case."""
        suffix, text, problem = payload
        if text is None:
            raise InputError("(file)", problem)
        return _case_from_data(parse_document(text, suffix, "(file)"), "(file)")


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


def decode_case(reader: Reader, payload: Any, engine: Any) -> Case:
    """Decode one payload, giving the reader the worker's Engine if it asks for one."""
    with_engine = getattr(reader, "decode_with_engine", None)
    if with_engine is not None:
        case: Case = with_engine(payload, engine)
        return case
    return reader.decode(payload)


def missing_context(reader: Reader, context: Mapping[str, Any]) -> list[str]:
    """The context fields ``reader``'s input never carries and ``context`` does not give."""
    return [key for key in getattr(reader, "context_required", ()) if context.get(key) is None]
