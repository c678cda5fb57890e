"""Raw inputs for the ``loader``, ``cli`` and ``service`` targets: files and requests as bytes.

The engine target mutates parsed documents; these targets mutate what a reader is given
before it parses anything, so that the readers' own limits are what is tested:
truncation, flipped bytes, bytes that are not UTF-8, deep nesting, duplicate keys, huge
or odd numbers (``1E+999999999``, 5,000-digit integers, ``NaN``), YAML aliases and tags,
wrong types (``coding: true``).

Seeds (built once per process, deterministic):

* ``case``: every ``examples/*.yaml`` file as written, and every seed of
  :func:`fuzz.seeds.seeds` written as JSON (``.json``) and as block YAML (``.yaml``);
* ``bundle``: small FHIR R4 Bundles (the Patient and up to 40 Conditions,
  MedicationRequests, Observations and AllergyIntolerances) cut from each Synthea
  bundle of ``tests/data/fhir`` and from ``examples/fhir``;
* ``request``: CDS Hooks requests (``patient-view`` with a prefetch cut from a Synthea
  bundle, ``order-select``/``order-sign`` with an esketamine or IV ketamine draft
  order, and the specification's own examples), each with the service id it is posted to.

:func:`raw_case` derives case *i* of a run from the run's seed and *i* alone
(``--show I`` rebuilds it), as :func:`fuzz.seeds.case` does for the engine target.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fuzz.seeds import ROOT, seeds

__all__ = ["BYTE_MUTATORS", "RawCase", "raw_case", "raw_seeds", "request_case", "request_seeds"]

#: (kind, suffix, bytes): kind "case" (a case file) or "bundle" (a FHIR Bundle).
RawInput = tuple[str, str, bytes]
RawCase = tuple[str, list[str], RawInput]
#: (service id, body bytes)
Request = tuple[str, bytes]

_KEEP = ("Condition", "MedicationRequest", "Observation", "AllergyIntolerance")
SPEC_PATIENT = "1288992"


def _plain(value: Any) -> Any:
    """Seed data as JSON/YAML-writable values (exact decimals written as numbers where exact)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _yaml_text(data: Any) -> str:
    import yaml  # type: ignore[import-untyped]

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


def _small_bundle(bundle: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    entries = bundle.get("entry", [])
    patients = [e for e in entries if e["resource"]["resourceType"] == "Patient"]
    others = [e for e in entries if e["resource"]["resourceType"] in _KEEP]
    picked = rng.sample(others, min(40, len(others)))
    return {"resourceType": "Bundle", "type": bundle.get("type", "collection"), "entry": patients + picked}


@lru_cache(maxsize=1)
def raw_seeds() -> tuple[tuple[str, RawInput], ...]:
    """Every raw seed, named; deterministic."""
    found: list[tuple[str, RawInput]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        found.append((path.name, ("case", ".yaml", path.read_bytes())))
    for name, document in seeds():
        data = _plain(document)
        found.append((f"{name}.json", ("case", ".json", json.dumps(data, indent=1).encode())))
        found.append((f"{name}.yaml", ("case", ".yaml", _yaml_text(data).encode())))
    rng = random.Random("bundles")  # noqa: S311 - reproducible test input
    bundles = sorted((ROOT / "tests" / "data" / "fhir").glob("synthea-r4-*.json"))
    bundles += sorted((ROOT / "examples" / "fhir").glob("*.json"))
    for path in bundles:
        small = _small_bundle(json.loads(path.read_text(encoding="utf-8")), rng)
        text = json.dumps(small, indent=1).encode()
        # Bundles are a fifth of the seeds, whatever the number of case seeds.
        for copy_number in range(max(1, len(found) // (4 * len(bundles)))):
            found.append((f"{path.name}~{copy_number}", ("bundle", ".json", text)))
    return tuple(found)


# ----------------------------------------------------------------------- byte mutators

_NUMBER = re.compile(rb"(?<![\w.\-])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.\-:])")
_VALUE = re.compile(rb"(?:\":|:)[ \t]*(?=[^\s\n])")  # just after a key's colon
_LINE = re.compile(rb"^[ \t]*-?[ \t]*\"?[A-Za-z_][\w]*\"?[ \t]*:.*$", re.MULTILINE)

_ODD_NUMBERS = [
    b"1E+999999999",
    b"-1E+999999999",
    b"1e-999999999",
    b"1e30",
    b"1e26",
    b"1e308",
    b"1e309",
    b"9" * 5000,
    b"-" + b"9" * 4301,
    b"0." + b"0" * 60 + b"1",
    b"1" + b"0" * 15,
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b".nan",
    b".inf",
    b"-0",
    b"-0.0",
    b"1_000",
    b"0x1F",
    b"0o17",
    b"1.",
    b".5",
    b"1e",
    b"+5",
]
_WRONG_VALUES = [b"true", b"false", b"null", b"[]", b"{}", b'"x"', b"[true]", b'{"value": 1}', b"~"]
_YAML_TAGS = [
    b"!!python/object/apply:os.system ['true']",
    b"!!binary aGVsbG8=",
    b"!!timestamp 2001-12-14",
    b"!!set {a, b}",
    b"!!omap [a: 1]",
    b"!unknown x",
    b"*undefined_alias",
    b"&anchor 5",
]


def _positions(pattern: re.Pattern[bytes], raw: bytes) -> list[re.Match[bytes]]:
    return list(pattern.finditer(raw))


def _replace_number(raw: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    found = _positions(_NUMBER, raw)
    if not found:
        return raw
    match = rng.choice(found)
    return raw[: match.start()] + rng.choice(pool) + raw[match.end() :]


def truncate(raw: bytes, rng: random.Random) -> bytes:
    """Cut the text anywhere (mid-key, mid-number, mid-UTF-8 sequence)."""
    return raw[: rng.randrange(len(raw) + 1)] if raw else raw


def flip(raw: bytes, rng: random.Random) -> bytes:
    """Flip one bit of 1 to 8 bytes."""
    if not raw:
        return raw
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def not_utf8(raw: bytes, rng: random.Random) -> bytes:
    """Insert bytes that are not UTF-8 (or a NUL, a BOM, a lone surrogate) anywhere."""
    junk = rng.choice([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\x00", b"\xef\xbb\xbf"])
    at = rng.randrange(len(raw) + 1)
    return raw[:at] + junk + raw[at:]


def deep(raw: bytes, rng: random.Random) -> bytes:
    """Replace a number by a value nested 63 to 100,000 lists deep."""
    depth = rng.choice([63, 64, 65, 200, 1000, 5000, 100_000])
    nested = b"[" * depth + b"1" + b"]" * depth
    if rng.random() < 0.3:
        nested = b'{"a":' * depth + b"1" + b"}" * depth
    return _replace_number(raw, rng, [nested])


def odd_number(raw: bytes, rng: random.Random) -> bytes:
    """Replace a number by a huge, tiny, long, non-finite or oddly written one."""
    return _replace_number(raw, rng, _ODD_NUMBERS)


def duplicate_key(raw: bytes, rng: random.Random) -> bytes:
    """Write a ``key: value`` line twice."""
    found = _positions(_LINE, raw)
    if not found:
        return raw
    match = rng.choice(found)
    line = match.group(0).lstrip(b" \t").lstrip(b"-").lstrip(b" \t")
    indent = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip(b" \t-"))]
    indent = indent.replace(b"-", b" ")
    if not line.rstrip().endswith((b",", b"{", b"[")) and raw[match.end() :].lstrip().startswith((b'"',)):
        line += b","
    return raw[: match.end()] + b"\n" + indent + line + raw[match.end() :]


def aliases(raw: bytes, rng: random.Random) -> bytes:
    """Add YAML aliases: a few hundred bytes that expand to billions of values, or a self-reference."""
    levels = rng.choice([3, 5, 9, 12])
    lines = [b"x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        refs = b", ".join([b"*x%d" % (level - 1)] * 9)
        lines.append(b"x%d: &x%d [%s]" % (level, level, refs))
    block = b"\n".join(lines) + b"\n"
    choice = rng.random()
    if choice < 0.5:
        return block + raw
    if choice < 0.8:  # the expansion where a value is read
        found = _positions(_NUMBER, raw)
        if found:
            match = rng.choice(found)
            return block + raw[: match.start()] + b"*x%d" % (levels - 1) + raw[match.end() :]
        return block + raw
    return b"a: &a [*a]\n" + raw  # an alias used inside its own anchor


def wrong_type(raw: bytes, rng: random.Random) -> bytes:
    """Put ``true``, ``null``, ``[]``, ... where a value was (``coding: true``)."""
    found = _positions(_VALUE, raw)
    if not found:
        return raw
    match = rng.choice(found)
    rest = raw[match.end() :]
    # replace the scalar that follows, or prepend to a container (leaving it malformed, also fine)
    scalar = re.match(rb'"(?:[^"\\\n]|\\.)*"|[^,\n\]\}]*', rest)
    cut = scalar.end() if scalar and not rest.startswith((b"{", b"[")) else 0
    return raw[: match.end()] + rng.choice(_WRONG_VALUES) + rest[cut:]


def yaml_tag(raw: bytes, rng: random.Random) -> bytes:
    """Put a YAML tag, an undefined alias or an anchor where a number was."""
    return _replace_number(raw, rng, _YAML_TAGS)


def control(raw: bytes, rng: random.Random) -> bytes:
    """Insert control characters, tabs, very long lines or odd Unicode (RTL mark, NBSP, emoji)."""
    junk = rng.choice(
        [
            b"\t",
            b"\r",
            b"\x1b[31m",
            b"\xe2\x80\x8f",
            b"\xc2\xa0",
            b"\xf0\x9f\x92\x8a",
            b"x" * 100_000,
            b"\\u0000",
        ]
    )
    at = rng.randrange(len(raw) + 1)
    return raw[:at] + junk + raw[at:]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "flip": flip,
    "not-utf8": not_utf8,
    "deep": deep,
    "odd-number": odd_number,
    "odd-number-again": odd_number,
    "duplicate-key": duplicate_key,
    "aliases": aliases,
    "wrong-type": wrong_type,
    "wrong-type-again": wrong_type,
    "yaml-tag": yaml_tag,
    "control": control,
}


def _mutate_bytes(raw: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    applied = [rng.choice(sorted(BYTE_MUTATORS)) for _ in range(rng.choice((1, 1, 1, 2)))]
    for name in applied:
        raw = BYTE_MUTATORS[name](raw, rng)
    return raw, applied


def raw_case(run_seed: int, index: int) -> RawCase:
    """Case ``index`` of a raw run: a case file or bundle, as bytes, with 1-2 byte mutations.

    (Well-formed files with odd content are the engine target's: :mod:`fuzz.mutators`.)
    """
    rng = random.Random(f"raw:{run_seed}:{index}")  # noqa: S311 - reproducible test input
    name, (kind, suffix, raw) = raw_seeds()[rng.randrange(len(raw_seeds()))]
    raw, applied = _mutate_bytes(raw, rng)
    return name, applied, (kind, suffix, raw)


# --------------------------------------------------------------------------- requests


def _resource_list(path_glob: str) -> list[list[dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "tests" / "data" / "fhir").glob(path_glob)):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        found.append([entry["resource"] for entry in bundle.get("entry", [])])
    return found


def _order(drug: str, dose: Any, per_week: Any) -> dict[str, Any]:
    route = "46713006" if drug == "esketamine" else "47625008"
    concept: dict[str, Any] = (
        {"text": "Spravato (esketamine) 28 MG nasal spray device"}
        if drug == "esketamine"
        else {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}]}
    )
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{drug}-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": concept,
        "subject": {"reference": f"Patient/{SPEC_PATIENT}"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_week, "period": 1, "periodUnit": "wk"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": route}]},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def _retarget(resource: dict[str, Any], patient_ref: str) -> dict[str, Any]:
    resource = copy.deepcopy(resource)
    for key in ("subject", "patient"):
        if isinstance(resource.get(key), dict):
            resource[key] = {"reference": patient_ref}
    return resource


@lru_cache(maxsize=1)
def request_seeds() -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(name, service id, request body) seeds for the service target."""
    rng = random.Random("requests")  # noqa: S311 - reproducible test input
    ref = f"Patient/{SPEC_PATIENT}"
    found: list[tuple[str, str, dict[str, Any]]] = []
    for number, resources in enumerate(_resource_list("synthea-r4-*.json")):
        (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
        patient = {**patient, "id": SPEC_PATIENT}
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in resources:
            by_type.setdefault(resource["resourceType"], []).append(_retarget(resource, ref))
        prefetch = {"patient": patient}
        for key, kind in (
            ("conditions", "Condition"),
            ("medications", "MedicationRequest"),
            ("observations", "Observation"),
            ("allergies", "AllergyIntolerance"),
        ):
            items = by_type.get(kind, [])
            prefetch[key] = _searchset(rng.sample(items, min(15, len(items))))
        prefetch["medicationStatements"] = _searchset([])  # (none kept; no random draw)
        context = {"userId": "Practitioner/1", "patientId": SPEC_PATIENT}
        found.append(
            (
                f"patient-view/synthea#{number}",
                "ketacds-patient-view",
                {
                    "hook": "patient-view",
                    "hookInstance": f"00000000-0000-4000-8000-{number:012d}",
                    "context": context,
                    "prefetch": prefetch,
                },
            )
        )
        for hook in ("order-select", "order-sign"):
            drug = rng.choice(["esketamine", "ketamine"])
            order = _order(drug, rng.choice([28, 56, 84, 112, 35, 70]), rng.choice([1, 2, 3]))
            order_context: dict[str, Any] = {
                **context,
                "draftOrders": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"resource": order}],
                },
            }
            if hook == "order-select":
                order_context["selections"] = [f"MedicationRequest/{order['id']}"]
            found.append(
                (
                    f"{hook}/synthea#{number}",
                    f"ketacds-{hook}",
                    {
                        "hook": hook,
                        "hookInstance": f"00000000-0000-4000-9000-{number:012d}",
                        "context": order_context,
                        "prefetch": prefetch,
                    },
                )
            )
    cds = ROOT / "tests" / "data" / "cds-hooks"
    for name in ("patient-view-request.json", "order-select-context-r4.json", "order-sign-context-r4.json"):
        body = json.loads((cds / name).read_text(encoding="utf-8"))
        body.pop("fhirServer", None)  # the service must never fetch from anywhere while fuzzed
        body.pop("fhirAuthorization", None)
        hook = body.get("hook") or name.split("-context")[0]
        body.setdefault("hook", hook)
        body.setdefault("hookInstance", "00000000-0000-4000-a000-000000000000")
        found.append((f"spec/{name}", f"ketacds-{hook}", body))
    return tuple(found)


def request_case(run_seed: int, index: int) -> tuple[str, list[str], Request]:
    """Request ``index`` of a service run: a seed request, mutated as data, sometimes as bytes too.

    Data mutators are those of :mod:`fuzz.mutators` plus ``coding-true`` (a coding that is
    not a list of codings); one request in four also gets a byte mutator.
    """
    from fuzz.mutators import MUTATORS, mutate

    rng = random.Random(f"request:{run_seed}:{index}")  # noqa: S311 - reproducible test input
    name, service_id, body = request_seeds()[rng.randrange(len(request_seeds()))]
    body = copy.deepcopy(body)
    applied = [rng.choice([*sorted(MUTATORS), "coding-true"]) for _ in range(rng.choice((1, 1, 2, 3)))]
    for mutation in applied:
        if mutation == "coding-true":
            _coding_true(body, rng)
        else:
            mutate(mutation, body, rng)
    raw = json.dumps(body, default=str).encode()
    if rng.random() < 0.25:
        raw, more = _mutate_bytes(raw, rng)
        applied += [f"bytes:{m}" for m in more]
    return name, applied, (service_id, raw)


def _coding_true(body: Any, rng: random.Random) -> None:
    found: list[dict[str, Any]] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "coding" in node:
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if found:
        rng.choice(found)["coding"] = rng.choice([True, 5, "text", {"system": "x"}, [True, None, 3]])
