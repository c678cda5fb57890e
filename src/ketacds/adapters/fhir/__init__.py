"""FHIR R4 → :class:`~ketacds.models.inputs.PatientRecord`, one resource at a time.

Real records are messy: a resource that does not validate, a product code ketacds
does not know, a unit it cannot convert, a condition marked entered-in-error. Each
resource is validated on its own with fhir.resources' R4B models (its default R5
models reject R4 data), so one bad resource never spoils the rest, and everything
that is not read, or read only with an assumption, becomes a
:class:`~ketacds.models.quality.DataQualityIssue` on the record: never a crash,
never silently dropped. Errors among them are facts the rules see (``KCDS-GAP-013``).

What is read (the codes are data, in ``rulesets/terminology/``):

==================================  ===============================================
Patient                             birthDate, gender; deceased[x] (the engine then
                                    refuses to assess: NotAssessedError)
Condition                           every coding in a known system; clinicalStatus;
                                    verificationStatus (refuted, entered-in-error
                                    left out; unconfirmed kept with a warning); onset
MedicationRequest / -Statement      RxNorm products → ingredients (with strengths);
                                    status; dose and frequency of the first dosage
                                    (R4 ``doseAndRate``; STU3 ``doseQuantity`` read
                                    leniently, with a warning); as needed
Observation                         the LOINC codes of ``fhir-r4.yaml``, newest
                                    ``keep_latest`` per code; panels by component;
                                    UCUM units; newest weight and height fill the
                                    patient; pregnancy status
AllergyIntolerance                  codes, clinicalStatus, verificationStatus
==================================  ===============================================

Entry points: :func:`read_bundle`, :func:`read_resources` (a record) and
:func:`read_draft_orders` (the ketamine or esketamine orders of a CDS Hooks
``draftOrders`` bundle, ready to assess).

The package is split by resource: ``bundle.py`` (the entry points and the record),
``patient.py``, ``conditions.py`` (and allergies), ``observations.py``,
``medications.py`` with ``dosage.py``, ``orders.py`` (draft orders → planned route),
``reading.py`` (what every reader shares), ``validation.py`` and ``tables.py`` (the
fixed FHIR vocabulary).
"""

from __future__ import annotations

from ketacds.adapters.fhir.bundle import (
    bundle_resources,
    is_bundle,
    read_bundle,
    read_bundle_case,
    read_draft_orders,
    read_resources,
)
from ketacds.adapters.fhir.orders import DraftOrder, DraftOrders
from ketacds.adapters.fhir.validation import VALIDATION_CACHE_SIZE, validation_cache_stats

__all__ = [
    "VALIDATION_CACHE_SIZE",
    "DraftOrder",
    "DraftOrders",
    "bundle_resources",
    "is_bundle",
    "read_bundle",
    "read_bundle_case",
    "read_draft_orders",
    "read_resources",
    "validation_cache_stats",
]
