"""Paths shared by the tests (importable because pyproject puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_DATA = ROOT.parent / "shared" / "data"
