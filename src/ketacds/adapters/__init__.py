"""Adapters from the formats integrators hold (FHIR R4) to ketacds' models."""
