"""Paths and data shared by the tests (importable because pyproject puts tests/ on sys.path)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ketacds.adapters.cds_hooks import CardContext
    from ketacds.ruleset.ir import RuleSet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
#: Real-world test input written outside ketacds, copied into the repository (see DATA/PROVENANCE.md).
DATA = Path(__file__).resolve().parent / "data"
#: The CDS Hooks specification's own examples, normalised (read-only).
CDS_HOOKS = DATA / "cds-hooks"
#: Ten Synthea R4 patient bundles (read-only).
FHIR_BUNDLES = DATA / "fhir"


#: Two adequate antidepressant trials without response in the current episode (TRD), as
#: case-file data.
TRD = [
    {"name": "escitalopram", "dose": 20, "unit": "mg", "weeks": 8, "response": "none", "adequate_dose": True},
    {
        "name": "venlafaxine",
        "dose": 225,
        "unit": "mg",
        "weeks": 10,
        "response": "partial",
        "adequate_dose": True,
    },
]


def synthea(number: str) -> Path:
    """The Synthea bundle whose file name starts with ``synthea-r4-{number}-``."""
    (path,) = FHIR_BUNDLES.glob(f"synthea-r4-{number}-*.json")
    return path


def synthea_with(number: str, *resources: dict[str, Any]) -> dict[str, Any]:
    """The Synthea bundle ``number`` with ``resources`` added as transaction entries (one edit each)."""
    data: dict[str, Any] = json.loads(synthea(number).read_text())
    for resource in resources:
        data["entry"].append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": copy.deepcopy(resource),
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return data


SCENARIOS = Path(__file__).resolve().parent / "scenarios"
#: A frozen copy of ketacds-core 0.1.0 (23 rules) for the scenario tooling's tests (see fixtures/README.md).
SLICE_RULES = Path(__file__).resolve().parent / "fixtures" / "ketacds-core-0.1.0"

#: One valid scenario (esketamine, US, TRD, nothing of concern), as YAML text to vary in tests.
SCENARIO = """\
title: TRD, esketamine in the US
patient: {birth_date: 1981-03-14, sex: female, weight: 68 kg, height: 165 cm}
conditions:
  - {code: {system: icd-10-cm, code: F33.2}}
trials:
  - {name: escitalopram, dose: 20, unit: mg, weeks: 8, response: none, adequate_dose: true}
  - {name: venlafaxine, dose: 225, unit: mg, weeks: 10, response: partial, adequate_dose: true}
observations:
  - {name: systolic, value: 128, unit: mmHg, time: 2026-11-21T08:30:00-05:00}
  - {name: diastolic, value: 78, unit: mmHg, time: 2026-11-21T08:30:00-05:00}
context: {route: esketamine-nasal, jurisdiction: US, now: 2026-11-21T09:00:00-05:00}
expect:
  status: no-concerns-found
  findings: [KCDS-CAND-002]
  absent: [KCDS-CI-004]
"""


def write_scenario(directory: Path, text: str = SCENARIO, name: str = "case.scenario.yaml") -> Path:
    """Write a scenario file into ``directory`` and return its path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def card_context(ruleset: RuleSet, hook: str = "patient-view", **fields: Any) -> CardContext:
    """What the CDS Hooks cards need, with uuids ``uuid-0``, ``uuid-1``, ... (deterministic)."""
    from ketacds.adapters.cds_hooks import CardContext

    counter = itertools.count()
    return CardContext(
        hook=hook,
        ruleset=ruleset,
        docs_url="https://cds.example.org/docs/rules/",
        mapping_version="test",
        uuid=lambda: f"uuid-{next(counter)}",
        **fields,
    )
