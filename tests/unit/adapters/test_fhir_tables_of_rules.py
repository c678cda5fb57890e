"""A FHIR record is read with the FHIR tables of the rules it is assessed with (``--rules DIR``).

The tables (``terminology/fhir-r4.yaml``, ``rxnorm-products.yaml``) belong to a ruleset
directory; the engine's terminology carries them, so ``ketacds assess --rules DIR``,
``ketacds batch --rules DIR`` and the server all read a bundle with DIR's tables, never
silently with the bundled ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketacds import Engine
from ketacds.adapters.fhir import read_bundle
from ketacds.cli import main
from ketacds.ruleset.load import bundled_rules_dir, load_ruleset

#: A LOINC body-weight code the bundled tables do not read ("Body weight Measured").
MEASURED_WEIGHT = "3141-9"
#: The treatment context a Bundle does not carry.
CONTEXT = ("--route", "esketamine-nasal", "--jurisdiction", "US", "--now", "2026-11-21T09:00:00Z")
NOT_READ = "Left out because no rule reads them: Observation (other codes) ×1."

BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-05-01"}},
        {
            "resource": {
                "resourceType": "Observation",
                "id": "w1",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": MEASURED_WEIGHT}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-11-20T09:00:00Z",
                "valueQuantity": {
                    "value": 81,
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            }
        },
    ],
}


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled rules whose FHIR table also reads the measured body weight."""
    copy = tmp_path_factory.mktemp("rules") / "rulesets"
    shutil.copytree(bundled_rules_dir(), copy)
    table = copy / "terminology" / "fhir-r4.yaml"
    text = table.read_text(encoding="utf-8")
    extra = (
        f'  - {{code: "{MEASURED_WEIGHT}", concept: body-weight, dimension: mass, patient: weight, '
        'source: "test"}\n'
    )
    table.write_text(text.replace("observations:\n", "observations:\n" + extra, 1), encoding="utf-8")
    return copy


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(BUNDLE), encoding="utf-8")
    return path


def assess(bundle: Path, *options: str) -> dict:
    result = CliRunner().invoke(main, ["assess", *options, "--format", "json", *CONTEXT, str(bundle)])
    assert 0 == result.exit_code, result.output
    assessment: dict = json.loads(result.stdout)
    return assessment


def test_assess_with_rules_reads_the_bundle_with_their_fhir_tables(rules: Path, bundle: Path):
    """The copied table's extra code is read: the weight is the patient's, nothing is left out."""
    bundled = assess(bundle)
    copied = assess(bundle, "--rules", str(rules))

    assert NOT_READ in [i["message"] for i in bundled["data_quality"]]
    assert NOT_READ not in [i["message"] for i in copied["data_quality"]]
    assert bundled["provenance"]["digest"] == copied["provenance"]["digest"]  # the rules are the same


def test_the_engine_carries_the_tables_of_its_directory(rules: Path):
    """``Engine(DIR)`` and ``Engine.from_ruleset(..., rules_dir=DIR)`` read with DIR's tables."""
    for engine in (Engine(rules), Engine.from_ruleset(load_ruleset(rules), rules_dir=rules)):
        assert MEASURED_WEIGHT in engine.terminology.fhir_mapping.observations
        record = read_bundle(BUNDLE, terminology=engine.terminology)
        assert record.patient.weight is not None
        assert 81 == record.patient.weight.value
    assert MEASURED_WEIGHT not in Engine().terminology.fhir_mapping.observations
    assert read_bundle(BUNDLE).patient.weight is None


def test_a_broken_fhir_table_of_the_rules_is_a_rules_error(rules: Path, bundle: Path, tmp_path: Path):
    """Tables that cannot be read fail the command as the rules do (exit 2), not with a traceback."""
    broken = tmp_path / "broken"
    shutil.copytree(rules, broken)
    (broken / "terminology" / "fhir-r4.yaml").write_text("keep_latest: [\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["assess", "--rules", str(broken), *CONTEXT, str(bundle)])

    assert 2 == result.exit_code
    assert "rules:" in result.stderr
    assert "fhir-r4.yaml" in result.stderr


def test_batch_with_rules_reads_the_bundles_with_their_fhir_tables(rules: Path, bundle: Path, tmp_path: Path):
    """A batch worker's engine is built from the loaded rules and still reads with DIR's tables."""
    source = tmp_path / "bundles"
    source.mkdir()
    shutil.copy(bundle, source / "p1.json")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "batch",
            str(source),
            "--rules",
            str(rules),
            "--out",
            str(out),
            "--workers",
            "1",
            "--quiet",
            *CONTEXT,
        ],
    )

    assert 0 == result.exit_code, result.output
    (line,) = (out / "assessments.ndjson").read_text(encoding="utf-8").splitlines()
    assert "Observation (other codes)" not in line
