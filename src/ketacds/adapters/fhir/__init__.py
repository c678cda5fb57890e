"""FHIR R4 → :class:`~ketacds.models.inputs.PatientRecord` (see :mod:`ketacds.adapters.fhir.bundle`)."""

from ketacds.adapters.fhir.bundle import (
    VALIDATION_CACHE_SIZE,
    DraftOrder,
    DraftOrders,
    bundle_resources,
    is_bundle,
    read_bundle,
    read_bundle_case,
    read_draft_orders,
    read_resources,
    validation_cache_stats,
)

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
