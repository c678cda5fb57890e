"""Validating one resource against its R4B model, cached by content.

Each resource is validated on its own with fhir.resources' R4B models (its default R5
models reject R4 data), so one bad resource never spoils the rest. A dose written the
STU3 way is read leniently; why a resource is invalid is summarised without echoing
any of its values.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment,unused-ignore]

from ketacds import limits
from ketacds.adapters.fhir.tables import Resource

__all__ = ["VALIDATION_CACHE_SIZE", "Checked", "checked", "validated", "validation_cache_stats"]

M = TypeVar("M", bound=BaseModel)


class _ValidationCache:
    """Validation outcomes by resource content (least recently used out first), shared by one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        #: key → (outcome, whether the content was checked against the limits first)
        self.entries: OrderedDict[str | bytes, tuple[tuple[Any, str | None, bool], bool]] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def validate(self, model: type[M], resource: Mapping[str, Any]) -> tuple[M | None, str | None, bool]:
        """``(model or None, the problem if invalid, whether the STU3 dose was read leniently)``."""
        key = _key(model, resource)
        return self._found(key, within_limits=False) or self._validate(
            key, model, resource, within_limits=False
        )

    def checked(self, model: type[M], resource: Mapping[str, Any]) -> Checked[M]:
        """The resource checked against the limits, then validated: ``((where, why) or None, outcome)``.

        The same as :func:`ketacds.limits.find_problem` and then :meth:`validate` when it
        finds nothing, but a resource validated before (found by content) is not walked
        for limits again: only a resource within the limits is ever cached. A resource
        whose content cannot even be written as a key is checked the long way.
        """
        try:
            key = _key(model, resource)
        except (RecursionError, ValueError):  # too deep, or a number too long to write
            key = None
        if key is not None:
            found = self._found(key, within_limits=True)
            if found is not None:
                return None, cast(tuple[M | None, str | None, bool], found)
        out_of_range = limits.find_problem(resource)
        if out_of_range is not None:
            return out_of_range, (None, None, False)
        if key is None:  # pragma: no cover - find_problem refuses what json.dumps cannot write
            return None, _validate_uncached(model, resource)
        return None, self._validate(key, model, resource, within_limits=True)

    def _found(self, key: str | bytes, *, within_limits: bool) -> tuple[Any, str | None, bool] | None:
        """The outcome cached for ``key`` (only one checked against the limits, if ``within_limits``)."""
        with self.lock:
            found = self.entries.get(key)
            if found is None or (within_limits and not found[1]):
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def _validate(
        self, key: str | bytes, model: type[M], resource: Mapping[str, Any], *, within_limits: bool
    ) -> tuple[M | None, str | None, bool]:
        with self.lock:
            self.misses += 1
        outcome = _validate_uncached(model, resource)
        with self.lock:
            self.entries[key] = (outcome, within_limits)
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return outcome


#: What :meth:`_ValidationCache.checked` gives: the first value past a limit (or ``None``),
#: and ``(model or None, the problem if invalid, whether the STU3 dose was read leniently)``.
Checked = tuple[tuple[str, str] | None, tuple[M | None, str | None, bool]]


def _key(model: type[BaseModel], resource: Mapping[str, Any]) -> str | bytes:
    """The cache key of ``resource`` validated as ``model``: its canonical JSON.

    Written by orjson when it is installed (the server extra; a few times faster), else,
    or for what orjson cannot write (an integer past 64 bits), by ``json``: each content
    always gets the same key, and the two kinds never meet (``bytes`` and ``str``).
    """
    if orjson is not None:
        try:
            written: bytes = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
            return model.__name__.encode() + b"\0" + written
        except TypeError:
            pass
    return f"{model.__name__}\0{json.dumps(resource, sort_keys=True, separators=(',', ':'), default=str)}"


def _validate_uncached(model: type[M], resource: Mapping[str, Any]) -> tuple[M | None, str | None, bool]:
    try:
        return model.model_validate(resource), None, False
    except ValidationError as error:
        lenient = _stu3_dosage(resource)
        if lenient is not None:
            try:
                return model.model_validate(lenient), None, True
            except ValidationError:
                pass
        return None, _summarise(error), False


#: Validated resources are kept per process, up to this many (the models are never changed after).
VALIDATION_CACHE_SIZE = 20_000
_VALIDATED = _ValidationCache(VALIDATION_CACHE_SIZE)


def validated(model: type[M], resource: Mapping[str, Any]) -> tuple[M | None, str | None, bool]:
    """``(model or None, the problem if invalid, whether the STU3 dose was read leniently)``, cached."""
    return _VALIDATED.validate(model, resource)


def checked(model: type[M], resource: Mapping[str, Any]) -> Checked[M]:
    """``resource`` checked against the limits, then validated (cached): :meth:`_ValidationCache.checked`."""
    return _VALIDATED.checked(model, resource)


def validation_cache_stats() -> dict[str, int]:
    """How often a resource's validation was found in the per-process cache (for operations)."""
    return {"hits": _VALIDATED.hits, "misses": _VALIDATED.misses, "size": len(_VALIDATED.entries)}


def _summarise(error: ValidationError) -> str:
    """Where the resource is invalid, without echoing any of its values."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "(resource)"
        problems.append(f"{where}: {item['msg']}")
    more = len(error.errors()) - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _stu3_dosage(raw: Resource) -> dict[str, Any] | None:
    """The resource with STU3 ``dosage[].doseQuantity`` moved into R4 ``doseAndRate``, if it has any."""
    field = "dosageInstruction" if raw.get("resourceType") == "MedicationRequest" else "dosage"
    dosages = raw.get(field)
    if not isinstance(dosages, list) or not any(
        isinstance(d, Mapping) and "doseQuantity" in d for d in dosages
    ):
        return None
    fixed = []
    for dosage in dosages:
        if isinstance(dosage, Mapping) and "doseQuantity" in dosage:
            rest = {k: v for k, v in dosage.items() if k not in ("doseQuantity", "rateQuantity")}
            rate: dict[str, Any] = {"doseQuantity": dosage["doseQuantity"]}
            if "rateQuantity" in dosage:
                rate["rateQuantity"] = dosage["rateQuantity"]
            fixed.append({**rest, "doseAndRate": [rate]})
        else:
            fixed.append(dosage)
    return {**raw, field: fixed}
