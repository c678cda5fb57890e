"""Paths shared by the tests (importable because pyproject puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The CDS Hooks specification's own examples, normalised (read-only; see SHARED_DATA/README.md).
CDS_HOOKS = SHARED_DATA / "cds-hooks" / "normalized"
#: Ten Synthea R4 patient bundles (read-only).
FHIR_BUNDLES = SHARED_DATA / "fhir"


def synthea(number: str) -> Path:
    """The Synthea bundle whose file name starts with ``synthea-r4-{number}-``."""
    (path,) = FHIR_BUNDLES.glob(f"synthea-r4-{number}-*.json")
    return path
