"""The FHIR reading rules: terminology as data, from ``rulesets/terminology/``.

Two files, each validated against a JSON Schema and reported with file and line
when wrong:

* ``fhir-r4.yaml`` — which LOINC observation codes are read (and which fill the
  patient's weight and height), the codes that mean pregnant or not pregnant, SNOMED
  CT route codes, which drug and route make which planned treatment, event-timing
  abbreviations and the dose units that count product units;
* ``rxnorm-products.yaml`` — RxNorm clinical and branded drugs (SCD/SBD) with their
  ingredients and strengths.

They are not part of the ruleset digest (they say how a FHIR record is read, not what
the rules conclude), so they carry their own version and sha256 :attr:`FhirMapping.digest`,
which the CDS Hooks service prints beside the ruleset's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import jsonschema

from ketacds.errors import RulesetError
from ketacds.models.inputs import canonical_system
from ketacds.ruleset.load import bundled_rules_dir
from ketacds.yamldoc import Document, bundled_schema, schema_problem

__all__ = [
    "FhirMapping",
    "Ingredient",
    "ObservationCode",
    "PlannedRoute",
    "Product",
    "load_fhir_mapping",
]

_STRENGTH = re.compile(r"^(?P<value>[0-9]+(?:\.[0-9]+)?) (?P<unit>mg|mcg|g)(?P<per_ml>/mL)?$")


@attrs.frozen
class Ingredient:
    """One ingredient of a product; ``strength`` is per unit (tablet, device) or per mL."""

    name: str
    code: str | None = None
    strength: Decimal | None = None
    strength_unit: str | None = None
    per_ml: bool = False


@attrs.frozen
class Product:
    """An RxNorm product (SCD/SBD) and what it contains."""

    code: str
    display: str
    ingredients: tuple[Ingredient, ...]


@attrs.frozen
class ObservationCode:
    """A LOINC code ketacds reads; ``patient`` names the patient field its newest reading fills."""

    code: str
    concept: str
    dimension: str | None = None
    patient: str | None = None
    coded: bool = False


@attrs.frozen
class PlannedRoute:
    """An order for a drug of ``valueset`` by one of the route ``kinds`` plans ``route``."""

    valueset: str
    route: str
    kinds: tuple[str, ...]
    assumed: bool = False


@attrs.frozen(eq=False)
class FhirMapping:
    """Everything the FHIR adapter reads by table rather than by code."""

    version: str
    digest: str
    products: Mapping[str, Product]
    observations: Mapping[str, ObservationCode]
    keep_latest: int
    pregnant: frozenset[tuple[str, str]]
    not_pregnant: frozenset[tuple[str, str]]
    pregnancy_conditions: frozenset[tuple[str, str]]
    routes: Mapping[str, str]
    #: Route kinds an order's drug name states ("nasal spray"), read when it gives no route code.
    route_words: Mapping[str, tuple[str, ...]]
    planned: tuple[PlannedRoute, ...]
    timing: Mapping[str, tuple[int, int]]
    count_units: frozenset[str]
    #: LOINC codes of observations a rule would need but the reader cannot read (what each
    #: records): reported as an error, never counted as "no rule reads them".
    unread_observations: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def observation_codes(self) -> tuple[str, ...]:
        """The LOINC codes asked for (for prefetch queries), sorted: those read and those reported unread."""
        return tuple(sorted({*self.observations, *self.unread_observations}))


def _read(path: Path, schema: str) -> Any:
    doc = Document.read(path, str(path), RulesetError)
    errors = doc.schema_errors(bundled_schema("ketacds.terminology", schema))
    if errors:
        problem = schema_problem(jsonschema.exceptions.best_match(errors), unknown_keys=False)
        raise doc.error(problem.path, problem.reason)
    return doc.data


def _codes(items: list[dict[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((canonical_system(item["system"]), item["code"]) for item in items)


def _ingredient(data: Mapping[str, Any]) -> Ingredient:
    strength = data.get("strength")
    if strength is None:
        return Ingredient(name=data["name"], code=data.get("code"))
    match = _STRENGTH.match(strength)
    assert match is not None  # the schema's pattern guarantees it
    return Ingredient(
        name=data["name"],
        code=data.get("code"),
        strength=Decimal(match["value"]),
        strength_unit=match["unit"],
        per_ml=bool(match["per_ml"]),
    )


def _canonical_digest(*documents: Any) -> str:
    text = json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_fhir_mapping(directory: Path | str | None = None) -> FhirMapping:
    """Load and check the FHIR reading rules from ``directory`` (default: the bundled ones).

    ``directory`` is a ruleset directory; the files are read from its ``terminology/``.

    Raises:
        RulesetError: a file is missing, not YAML, or does not match its schema.
    """
    if directory is None:
        return _bundled()
    root = Path(directory) / "terminology"
    fhir = _read(root / "fhir-r4.yaml", "fhir-r4")
    table = _read(root / "rxnorm-products.yaml", "rxnorm-products")
    products: dict[str, Product] = {}
    for index, item in enumerate(table["products"]):
        if item["code"] in products:
            raise RulesetError(
                f"products[{index}]: product {item['code']} is listed twice",
                file=str(root / "rxnorm-products.yaml"),
            )
        products[item["code"]] = Product(
            code=item["code"],
            display=item["display"],
            ingredients=tuple(_ingredient(i) for i in item["ingredients"]),
        )
    observations = {
        o["code"]: ObservationCode(
            code=o["code"],
            concept=o["concept"],
            dimension=o.get("dimension"),
            patient=o.get("patient"),
            coded=o.get("coded", False),
        )
        for o in fhir["observations"]
    }
    pregnancy = fhir["pregnancy"]
    return FhirMapping(
        version=f"fhir-r4 {fhir['version']}, rxnorm-products {table['version']}",
        digest=_canonical_digest(fhir, table),
        products=products,
        observations=observations,
        keep_latest=fhir["keep_latest"],
        pregnant=_codes(pregnancy["pregnant"]),
        not_pregnant=_codes(pregnancy["not_pregnant"]),
        pregnancy_conditions=_codes(pregnancy["conditions"]),
        routes={r["code"]: r["kind"] for r in fhir["routes"]},
        route_words={kind: tuple(words) for kind, words in fhir.get("route_words", {}).items()},
        planned=tuple(
            PlannedRoute(
                valueset=p["valueset"],
                route=p["route"],
                kinds=tuple(p["kinds"]),
                assumed=p.get("assumed", False),
            )
            for p in fhir["planned"]
        ),
        timing={code: (t["count"], t["days"]) for code, t in fhir["timing_codes"].items()},
        count_units=frozenset(unit.lower() for unit in fhir["count_units"]),
        unread_observations={o["code"]: o["what"] for o in fhir.get("unread_observations", [])},
    )


@cache
def _bundled() -> FhirMapping:
    return load_fhir_mapping(bundled_rules_dir())
