"""The FHIR reading rules in rulesets/terminology/: loaded, checked, wrong files reported by line."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest

from ketacds import RulesetError
from ketacds.ruleset.load import bundled_rules_dir
from ketacds.terminology.mapping import Ingredient, load_fhir_mapping


def test_bundled_mapping():
    """The bundled tables load, with a version and a sha256 digest of their content."""
    mapping = load_fhir_mapping()

    assert mapping.version.startswith("fhir-r4 2026-11, rxnorm-products 2026-11")
    assert 64 == len(mapping.digest)
    assert "29463-7" in mapping.observation_codes
    assert "weight" == mapping.observations["29463-7"].patient
    assert (2, 1) == mapping.timing["BID"]
    assert (
        Ingredient(name="memantine", code="6719", strength=Decimal(2), strength_unit="mg", per_ml=True)
        == mapping.products["996740"].ingredients[0]
    )


def test_loading_from_a_directory_gives_the_same_digest(tmp_path):
    """A copy of the bundled tables loaded from disk has the bundled digest."""
    shutil.copytree(bundled_rules_dir() / "terminology", tmp_path / "terminology")

    assert load_fhir_mapping().digest == load_fhir_mapping(tmp_path).digest


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "fhir-r4.yaml",
            "keep_latest: 5",
            "keep_latest: 0",
            r"fhir-r4.yaml:\d+: keep_latest: 0 is less than the minimum of 1",
        ),
        (
            "rxnorm-products.yaml",
            "strength: 25 mg}",
            "strength: 25 tablets}",
            r"rxnorm-products.yaml:\d+: products\.0\.ingredients\.0\.strength",
        ),
        ("rxnorm-products.yaml", '{code: "316052"', '{code: "316049"', "product 316049 is listed twice"),
        ("fhir-r4.yaml", "id: fhir-r4", "id: fhir-r4\nid: again", "fhir-r4.yaml:"),
    ],
)
def test_mistakes_are_reported_with_file_and_line(tmp_path, file, old, new, message):
    """A wrong value, a bad strength, a duplicate product or duplicate key: RulesetError naming where."""
    shutil.copytree(bundled_rules_dir() / "terminology", tmp_path / "terminology")
    path = tmp_path / "terminology" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))

    with pytest.raises(RulesetError, match=message):
        load_fhir_mapping(tmp_path)


def test_missing_tables(tmp_path):
    """A ruleset directory without terminology/ is refused when its FHIR tables are asked for."""
    with pytest.raises(RulesetError, match="cannot read"):
        load_fhir_mapping(tmp_path)
