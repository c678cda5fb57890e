"""A corpus of patient cases, read from files of several formats, to measure a ruleset change on.

The readers are those of :mod:`ketacds.cases` (the one reader protocol, shared with
``ketacds batch``); this module says which a corpus tries, in which order, and turns
their items into :class:`~ketacds.cases.Case` objects. A case knows where it came from
(file, and line or index), how to name the patient (``patient.id`` and ``title``), and
how to load itself into a record and a context; reading is cheap and loading is
deferred, so a case that cannot be read is reported with the others instead of
stopping the run.

Formats read here:

* ``*.scenario.yaml`` / ``*.scenario.yml``: scenario files (``docs/scenario-format.md``),
  one scenario or a ``scenarios:`` list; the case is the scenario without its
  ``expect``, ``author`` and ``source``;
* ``*.ndjson`` / ``*.jsonl`` / ``*.json-seq``: one case per line;
* ``*.json``: one case, or a list of cases;
* ``*.yaml`` / ``*.yml``: one case (the ``ketacds assess`` shape, ``docs/input-format.md``).

A new format (FHIR bundles, say) plugs in with :func:`register`: a reader placed first
may claim ``*.json`` files whose content it recognises, and every other file falls
through to the readers here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ketacds.cases import Case, Item, JsonReader, NdjsonReader, Reader, ScenarioReader, YamlReader
from ketacds.errors import InputError
from ketacds.models.inputs import Context, PatientRecord
from ketacds.models.load import decode_text, load_case, load_context

__all__ = ["Case", "Reader", "read_corpus", "readers", "register"]


def _label(data: object, fallback: str) -> str:
    if not isinstance(data, Mapping):
        return fallback
    patient = data.get("patient")
    ident = patient.get("id") if isinstance(patient, Mapping) else None
    title = data.get("title")
    parts = [str(p) for p in (ident, title) if p]
    return " — ".join(parts) or fallback


def _case(source: str, data: object, fallback: str) -> Case:
    def load() -> tuple[PatientRecord, Context]:
        if not isinstance(data, Mapping):
            raise InputError("(top level)", f"expected a mapping, got {type(data).__name__}")
        return load_case(data)

    return Case(source=source, label=_label(data, fallback), load=load)


def _broken(source: str, error: InputError) -> Case:
    def load() -> tuple[PatientRecord, Context]:
        raise error

    return Case(source=source, label="(unreadable)", load=load)


def _decoded(reader: Reader, item: Item, where: str) -> Case:
    """A case of a reader without ``read_data``: loaded through its ``decode``."""

    def load() -> tuple[PatientRecord, Context]:
        record, context = reader.decode(item.payload)
        return record, load_context(context)

    return Case(source=where, label=item.source, load=load)


def _cases(reader: Reader, path: Path, shown: str) -> Iterator[Case]:
    """The cases of one file; ``shown`` is how to name it in reports."""
    if isinstance(reader, NdjsonReader):  # a file of lines is text as a whole, or one broken case
        try:
            decode_text(path.read_bytes(), shown)
        except OSError as error:
            yield _broken(shown, InputError(shown, f"cannot read file: {error.strerror}"))
            return
        except InputError as error:
            yield _broken(shown, error)
            return
    read_data = getattr(reader, "read_data", None)
    for item in reader.items(path):
        # An item's source is the file's name and what follows it (``:12``, ``#3``, ``[0]``).
        where = shown + item.source[len(path.name) :] if item.source.startswith(path.name) else shown
        if read_data is None:
            yield _decoded(reader, item, where)
            continue
        try:
            data, fallback = read_data(item, where)
        except InputError as error:
            yield _broken(where, error)
            continue
        yield _case(where, data, fallback)


_READERS: list[Reader] = [ScenarioReader(), NdjsonReader(), JsonReader(), YamlReader()]


def readers() -> tuple[Reader, ...]:
    """The registered readers, in the order they are asked."""
    return tuple(_READERS)


def register(reader: Reader) -> None:
    """Ask ``reader`` first from now on (a more specific format before the generic ones)."""
    _READERS.insert(0, reader)


def _reader_for(path: Path) -> Reader | None:
    return next((r for r in _READERS if r.detect(path)), None)


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _passed_over(path: Path) -> bool:
    """Whether ``path``, found in a directory, is a FHIR resource the built-in JSON reader would take.

    A plug-in reader for FHIR (registered first) still gets it.
    """
    if not isinstance(_reader_for(path), JsonReader):
        return False
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False  # the reader reports it
    return isinstance(document, Mapping) and "resourceType" in document


def read_corpus(paths: Iterable[Path]) -> list[Case]:
    """Every case under ``paths`` (files, or directories searched recursively), in a stable order.

    Files in a directory that no reader claims are passed over, and so are FHIR
    resources the built-in JSON reader would take (JSON with a ``resourceType``: a
    Bundle carries no treatment context, so it is no case); a file named directly must
    be claimed.

    Raises:
        InputError: a path does not exist, or a file named directly is of no known format.
    """
    cases: list[Case] = []
    for path in paths:
        if path.is_dir():
            files: Sequence[Path] = sorted(
                p for p in path.rglob("*") if p.is_file() and _reader_for(p) and not _passed_over(p)
            )
        elif path.is_file():
            if _reader_for(path) is None:
                known = ", ".join(r.name for r in _READERS)
                raise InputError(str(path), f"not a corpus file of a known format ({known})")
            files = [path]
        else:
            raise InputError(str(path), "no such file or directory")
        for file in files:
            reader = _reader_for(file)
            assert reader is not None
            cases += _cases(reader, file, _shown(file))
    return cases
