"""Patient records read from JSON resources, remembered by content (the service's next hook call).

An EHR sends the same patient's record again and again: ``order-select`` on each change
of the selection, ``order-sign`` after it, ``patient-view`` when the chart is opened
again. :func:`read_json_resources` reads it with :func:`~ketacds.adapters.fhir.read_resources`
the first time and remembers the :class:`~ketacds.models.inputs.PatientRecord` (frozen,
so it can be given out again) by everything the reading depends on:

* the resources' exact JSON text, in their order (written by orjson, keys unsorted),
  kept as its SHA-256 digest (32 bytes, not the text: a kept record then costs its
  model, not a second copy of the request; SHA-256, computed by the processor's own
  instructions where it has them, takes half the time of BLAKE2b on a 50 KB record);
* the patient id asked for;
* the mapping and the terminology they are read with (by identity: the entry holds
  both, so neither ``id`` can be reused while it is kept).

Only JSON data (dicts, lists, text, numbers, booleans) may be given: a tuple would be
written like a list. A content orjson cannot write exactly (an integer past 64 bits, a
string that is not Unicode, ``NaN`` or an infinity, which it writes as ``null``: any
``null`` at all keeps a record out) or a long one is read afresh every time, and so is
one whose reading fails. At most :data:`KEPT` records are kept, least recently used out
first.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ketacds.adapters.fhir.bundle import read_resources
from ketacds.models.inputs import PatientRecord
from ketacds.terminology.mapping import FhirMapping
from ketacds.terminology.valuesets import Terminology

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment,unused-ignore]

__all__ = ["KEPT", "read_json_resources"]

#: Records kept per process.
KEPT = 256
#: The longest JSON text (bytes) whose record is kept: a few hundred resources.
_LONGEST = 256 * 1024

#: ``null`` in the JSON text (a regular expression finds it faster than ``in`` does).
_NULL = re.compile(rb"null")

#: (digest of the JSON text, patient id, id(mapping), id(terminology))
_Key = tuple[bytes, str | None, int, int]
_kept: OrderedDict[_Key, tuple[FhirMapping, Terminology, PatientRecord]] = OrderedDict()
_lock = threading.Lock()


def _written(resources: Sequence[Any]) -> bytes | None:
    """The resources' JSON text, or ``None`` when it would not tell every content apart."""
    if orjson is None:  # pragma: no cover - the server extra installs it
        return None
    try:
        written: bytes = orjson.dumps(list(resources))
    except TypeError:
        return None
    return written if len(written) <= _LONGEST and not _NULL.search(written) else None


def read_json_resources(
    resources: Sequence[Any],
    *,
    patient_id: str | None,
    mapping: FhirMapping,
    terminology: Terminology,
) -> PatientRecord:
    """:func:`~ketacds.adapters.fhir.read_resources` of JSON data, remembered by content.

    Raises:
        InputError: as :func:`~ketacds.adapters.fhir.read_resources` (never remembered).
    """
    written = _written(resources)
    if written is None:
        return read_resources(resources, patient_id=patient_id, mapping=mapping, terminology=terminology)
    key = (hashlib.sha256(written).digest(), patient_id, id(mapping), id(terminology))
    with _lock:
        found = _kept.get(key)
        if found is not None and found[0] is mapping and found[1] is terminology:
            _kept.move_to_end(key)
            return found[2]
    record = read_resources(resources, patient_id=patient_id, mapping=mapping, terminology=terminology)
    with _lock:
        _kept[key] = (mapping, terminology, record)
        if len(_kept) > KEPT:
            _kept.popitem(last=False)
    return record
