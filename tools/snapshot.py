"""Fingerprint every Assessment ketacds gives on a fixed corpus, to prove a refactor changed none.

A restructuring (issue 17) must leave every Assessment byte for byte as it was. This
script assesses a fixed corpus through the public API only (so it runs unchanged on
both sides of a refactor) and writes one line per output: what was assessed, and the
sha256 of each rendering (JSON, text and Markdown) or of the refusal or error:

* every scenario of ``tests/scenarios/``;
* every case in ``examples/`` and every FHIR bundle (the example, and the Synthea bundles in
  ``tests/data/fhir/``), for every route and
  jurisdiction the ruleset names;
* ``--patients`` synthetic patients (``ketacds.synthetic``, fixed seed; 10,000 by default).

Usage::

    python tools/snapshot.py --out build/snapshot-before.tsv      # on the old main
    python tools/snapshot.py --out build/snapshot-after.tsv --compare build/snapshot-before.tsv

``--compare`` prints every line that differs and exits 1 when any does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

from ketacds import Engine
from ketacds.errors import KetacdsError
from ketacds.models.load import load_case, read_document
from ketacds.reporting import render
from ketacds.scenarios.load import find_scenario_files, load_scenario_file
from ketacds.synthetic import synthetic_cases

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-11-21T09:00:00Z"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(engine: Engine, record: object, context: object) -> str:
    """The sha256 of the JSON, text and Markdown renderings, or of the refusal."""
    try:
        assessment = engine.assess(record, context)  # type: ignore[arg-type]
    except KetacdsError as error:
        return f"{type(error).__name__}:{_digest(str(error))}"
    return " ".join(_digest(render(assessment, fmt)) for fmt in ("json", "text", "markdown"))


def _scenarios(engine: Engine) -> Iterator[tuple[str, str]]:
    for path in find_scenario_files([ROOT / "tests" / "scenarios"]):
        for scenario in load_scenario_file(path).scenarios:
            yield (
                f"scenario\t{path.name}:{scenario.line}",
                _fingerprint(engine, scenario.record, scenario.context),
            )


def _examples(engine: Engine) -> Iterator[tuple[str, str]]:
    from ketacds.adapters.fhir import read_bundle_case

    routes = list(engine.ruleset.routes)
    jurisdictions = [j.id for j in engine.ruleset.jurisdictions]
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        try:
            record, context = load_case(read_document(path))
        except KetacdsError as error:
            yield f"example\t{path.name}", f"{type(error).__name__}:{_digest(str(error))}"
            continue
        yield f"example\t{path.name}", _fingerprint(engine, record, context)
    bundles = [*sorted((ROOT / "examples" / "fhir").glob("*.json"))]
    bundles += sorted((ROOT / "tests" / "data" / "fhir").glob("*.json"))  # Synthea, real-world shaped
    for path in bundles:
        bundle = read_document(path)
        for route in routes:
            for jurisdiction in jurisdictions:
                where = f"fhir\t{path.name}:{route}:{jurisdiction}"
                overrides = {"route": route, "jurisdiction": jurisdiction, "now": NOW}
                try:
                    record, context = read_bundle_case(
                        bundle, overrides=overrides, terminology=engine.terminology
                    )
                except KetacdsError as error:
                    yield where, f"{type(error).__name__}:{_digest(str(error))}"
                    continue
                yield where, _fingerprint(engine, record, context)


def _synthetic(engine: Engine, patients: int) -> Iterator[tuple[str, str]]:
    now = dt.datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    for number, case in enumerate(synthetic_cases(patients, now=now)):
        try:
            record, context = load_case(case)
        except KetacdsError as error:
            yield f"synthetic\t{number}", f"{type(error).__name__}:{_digest(str(error))}"
            continue
        yield f"synthetic\t{number}", _fingerprint(engine, record, context)


def _read(path: Path) -> dict[str, str]:
    rows = (line.rsplit("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {key: value for key, value in rows}  # noqa: C416 - each row is a [key, value] list


def main(argv: list[str] | None = None) -> int:
    """Write the snapshot; with ``--compare``, report the outputs that differ."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the TSV file to write")
    parser.add_argument("--patients", type=int, default=10_000, help="synthetic patients (default 10,000)")
    parser.add_argument("--compare", type=Path, help="a snapshot to compare with; exit 1 on any difference")
    args = parser.parse_args(argv)

    engine = Engine()
    rows = [*_scenarios(engine), *_examples(engine), *_synthetic(engine, args.patients)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{key}\t{value}\n" for key, value in rows), encoding="utf-8")
    total = _digest(args.out.read_text(encoding="utf-8"))
    kinds = {
        kind: sum(1 for key, _ in rows if key.startswith(kind + "\t"))
        for kind in ("scenario", "example", "fhir", "synthetic")
    }
    print(f"{args.out}: {len(rows)} outputs {kinds}; sha256 {total}")
    if args.compare is None:
        return 0
    before, after = _read(args.compare), dict(rows)
    differ = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    for key in differ:
        print(f"differs: {key}: {before.get(key, '(absent)')} -> {after.get(key, '(absent)')}")
    print(f"{len(differ)} of {len(before.keys() | after.keys())} outputs differ from {args.compare}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
