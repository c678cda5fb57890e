"""Data quality: what an adapter could not read, or read only with an assumption.

Real records arrive with resources that do not validate, codes ketacds does not
know, units it cannot convert and statuses that exclude an item. None of that may
crash an assessment, and none of it may vanish: each becomes a
:class:`DataQualityIssue` that travels with the :class:`~ketacds.models.inputs.PatientRecord`
into the :class:`~ketacds.models.results.Assessment`.

Severities:

``error``    part of the record could not be read, and it could change the answer
             (the rules see these: ``KCDS-GAP-013`` makes the status at best
             ``incomplete``);
``warning``  read, but with an assumption the clinician should know about (a
             provisional diagnosis counted, an STU3 dose read leniently, ...);
``info``     left out by design (resource types and codes no rule reads, entries
             marked entered-in-error or refuted), counted so nothing is silent.
"""

from __future__ import annotations

from typing import Literal, get_args

import attrs
from attrs import validators as v

__all__ = ["QUALITY_SEVERITIES", "DataQualityIssue", "QualitySeverity"]

QualitySeverity = Literal["error", "warning", "info"]
#: The severities of a data-quality issue, most serious first.
QUALITY_SEVERITIES: tuple[str, ...] = get_args(QualitySeverity)

_text = v.optional(v.instance_of(str))


@attrs.frozen(kw_only=True)
class DataQualityIssue:
    """One problem met while reading the record.

    Attributes:
        severity: ``error``, ``warning`` or ``info`` (see the module docstring).
        code: a stable machine-readable kind, e.g. ``invalid-resource``, ``unknown-unit``,
            ``unmapped-medication``, ``excluded``, ``lenient-parse``, ``not-read``.
        message: one sentence for the clinician or integrator.
        resource: the resource it concerns, as ``Type/id``, when there is one.
        path: the element inside that resource, e.g. ``valueQuantity.unit``.

    .. versionadded:: 0.1.0
    """

    severity: QualitySeverity = attrs.field(validator=v.in_(QUALITY_SEVERITIES))
    code: str = attrs.field(validator=v.instance_of(str))
    message: str = attrs.field(validator=v.instance_of(str))
    resource: str | None = attrs.field(default=None, validator=_text)
    path: str | None = attrs.field(default=None, validator=_text)
