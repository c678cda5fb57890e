"""The assessment hot path, stage by stage, this tree beside an older revision (issue 18).

Usage::

    make bench                                                  # part of the report (BENCH_BASE=...)
    .venv/bin/python benchmarks/hotpath.py                      # this tree against main
    .venv/bin/python benchmarks/hotpath.py --against b325944 --reps 3 --write docs/performance.md
    .venv/bin/python benchmarks/hotpath.py --profile            # cProfile of this tree only

Each side runs in its own subprocess that imports ``ketacds`` from its own source tree
(the older revision is unpacked with ``git archive`` into a temporary directory). The
two sides alternate over ``--reps`` repetitions so that machine noise hits both alike.
Every call is timed on its own (``time.process_time_ns``: CPU, which other tenants of a
shared machine cannot inflate), patient by patient, every stage in turn; a figure is the
best repetition's mean, median or 99th percentile. Stages:

* ``load_case`` — the case document into models (validation included);
* ``engine.facts`` — the records into facts (content ids included);
* ``program.run`` — the backend's program on those facts (the firings);
* ``assemble`` — the engine's assembler on those firings: an Assessment (the
  assembler is reached as ``engine.assess`` reaches it, through private names);
* ``engine.assess`` — the whole engine call;
* ``to_json`` — ``Assessment.to_json``;
* ``NDJSON line → output line`` — what ``ketacds batch`` does per record: the line
  decoded, read and checked, assessed, and its output line written;
* the same with the compiled backend (generated Python), on a side that has one.

Before anything is timed, each side checks that the compiled backend (where there is one)
gives durable_rules' firings and Assessment on every patient. Cases the engine refuses (a
``KetacdsError``) are left out of every stage, on both sides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Table, publish  # noqa: E402  (benchmarks/ is not a package)

STAGES = (
    "load_case",
    "engine.facts",
    "program.run",
    "assemble",
    "engine.assess",
    "to_json",
    "NDJSON line → output line",
)
COMPILED = (
    "program.run [compiled]",
    "engine.assess [compiled]",
    "NDJSON line → output line [compiled]",
)


class _Item:
    """What ``assessment_line`` needs of a batch item: its index and where it came from."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.source = f"population.ndjson:{index + 1}"


def _prepare(patients: int) -> tuple[list[tuple[str, Callable[[int], object]]], int]:
    """Every stage as a function of the patient's index, on the ``ketacds`` on ``sys.path``."""
    from ketacds import Engine
    from ketacds.batch import NdjsonReader
    from ketacds.batch.work import assessment_line
    from ketacds.errors import KetacdsError
    from ketacds.models.load import load_case, load_context
    from ketacds.synthetic import synthetic_cases

    engine = Engine()
    try:
        compiled: Any = Engine(backend="compiled")
    except Exception:  # an older revision without the compiled backend
        compiled = None
    cases = []
    for data in synthetic_cases(patients):
        try:
            record, context = load_case(data)
            engine.assess(record, context).to_json()
        except KetacdsError:
            continue
        cases.append(data)
    loaded = [load_case(data) for data in cases]
    facts = [engine.facts(r, c).facts for r, c in loaded]
    durable = [engine.warm(c.route, c.jurisdiction) for _, c in loaded]
    assessments = [engine.assess(r, c) for r, c in loaded]
    evaluated = [engine.evaluate(r, c) for r, c in loaded]
    backend = engine._backend(None)
    assemblers = [engine._assembler(c.route, c.jurisdiction, backend) for _, c in loaded]
    quality = [
        (*r.data_quality, *found.quality) for (r, _), (found, _) in zip(loaded, evaluated, strict=True)
    ]

    def assemble(i: int) -> object:
        found, raw = evaluated[i]
        return assemblers[i].assemble(found, raw, loaded[i][1], quality[i])

    lines = [json.dumps(case).encode() for case in cases]
    reader = NdjsonReader()

    def line_with(which: Any) -> Callable[[int], str]:
        def line(i: int) -> str:
            record, own = reader.decode(lines[i])
            assessment = which.assess(record, load_context(own))
            return str(assessment_line(_Item(i), record.patient.id, assessment))

        return line

    stages: list[tuple[str, Callable[[int], object]]] = [
        ("load_case", lambda i: load_case(cases[i])),
        ("engine.facts", lambda i: engine.facts(*loaded[i])),
        ("program.run", lambda i: durable[i].run(facts[i])),
        ("assemble", assemble),
        ("engine.assess", lambda i: engine.assess(*loaded[i])),
        ("to_json", lambda i: assessments[i].to_json()),
        ("NDJSON line → output line", line_with(engine)),
    ]
    if compiled is not None:
        generated = [compiled.warm(c.route, c.jurisdiction) for _, c in loaded]
        name = compiled.assess(*loaded[0]).provenance.engine
        plain = engine.assess(*loaded[0]).provenance.engine
        for i, (record, context) in enumerate(loaded):
            if generated[i].run(facts[i]).firings != durable[i].run(facts[i]).firings:
                raise SystemExit(f"the backends fire differently on {record.patient.id}")
            if compiled.assess(record, context).to_json().replace(name, plain) != assessments[i].to_json():
                raise SystemExit(f"the backends assess {record.patient.id} differently")
        stages += [
            ("program.run [compiled]", lambda i: generated[i].run(facts[i])),
            ("engine.assess [compiled]", lambda i: compiled.assess(*loaded[i])),
            ("NDJSON line → output line [compiled]", line_with(compiled)),
        ]
    return stages, len(cases)


def _measure(patients: int) -> dict[str, Any]:
    """CPU ns of every call of every stage, patient by patient."""
    stages, count = _prepare(patients)
    times: dict[str, list[int]] = {name: [] for name, _ in stages}
    clock = time.process_time_ns
    gc.collect()
    for i in range(count):
        for name, call in stages:
            began = clock()
            call(i)
            times[name].append(clock() - began)
    return {"patients": count, "times": times}


def _summary(times: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Mean, p50 and p99 (µs) of each stage."""
    out: dict[str, dict[str, float]] = {}
    for name, values in times.items():
        values = sorted(values)
        p99 = values[min(len(values) - 1, max(0, round(0.99 * len(values)) - 1))]
        out[name] = {
            "mean": statistics.fmean(values) / 1000,
            "p50": statistics.median(values) / 1000,
            "p99": p99 / 1000,
        }
    return out


def _profile(patients: int) -> None:
    import cProfile
    import pstats

    from ketacds import Engine
    from ketacds.models.load import load_case
    from ketacds.synthetic import synthetic_cases

    engine = Engine()
    cases = list(synthetic_cases(patients))
    profiler = cProfile.Profile()
    profiler.enable()
    for data in cases:
        try:
            record, context = load_case(data)
            engine.assess(record, context).to_json()
        except Exception:  # refused cases are part of the load, not an error here
            continue
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(40)


def _side(src: Path, patients: int) -> dict[str, Any]:
    """One repetition on one side, in a subprocess importing ``ketacds`` from ``src``."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(src), "--patients", str(patients)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _best(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each figure's best (lowest) value over the repetitions."""
    best: dict[str, dict[str, float]] = {}
    for run in runs:
        for stage, figures in run.items():
            for key, value in figures.items():
                best.setdefault(stage, {})[key] = min(best.get(stage, {}).get(key, value), value)
    return best


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def report(against: str, patients: int, reps: int) -> str:
    """Both sides measured, interleaved; the Markdown report."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", against, "src", "rulesets"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        sides = {"old": Path(tmp) / "src", "new": ROOT / "src"}
        runs: dict[str, list[dict[str, dict[str, float]]]] = {"old": [], "new": []}
        count = 0
        for rep in range(reps):
            for side in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                result = _side(sides[side], patients)
                count = int(result["patients"])
                runs[side].append(_summary(result["times"]))
    old, new = _best(runs["old"]), _best(runs["new"])
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", against], capture_output=True, text=True, check=True
    ).stdout.strip()
    table = Table(["stage", "old mean", "new mean", "old/new", "old p50", "new p50", "old p99", "new p99"])
    for stage in STAGES + COMPILED:
        if stage not in new:
            continue
        base = old.get(stage.replace(" [compiled]", ""))  # the compiled rows: against the old durable
        now = new[stage]
        ratio = f"**{base['mean'] / now['mean']:.2f}×**" if base else "—"
        table.row(
            stage,
            _cell(base["mean"] if base else None),
            _cell(now["mean"]),
            ratio,
            *(_cell(side.get(key)) for key in ("p50",) for side in (base or {}, now)),
            *(_cell(side.get(key)) for key in ("p99",) for side in (base or {}, now)),
        )
    lines = [
        f"Generated by `benchmarks/hotpath.py --against {against} --patients {patients} --reps {reps}` on "
        f"{dt.datetime.now(dt.UTC).date().isoformat()}, load average {os.getloadavg()[0]:.1f}, Python "
        f"{platform.python_version()}: old = `{revision}` ({against}), new = this tree, each in its own "
        f"process, alternating, on the same {count:,} synthetic patients; CPU µs per call, best of {reps}. "
        "Rows marked [compiled] run the compiled backend and are set against the old side's durable_rules. "
        "The stages timed alone add up to more than `engine.assess`: a call timed alone starts with "
        "colder caches.",
        "",
        *table.lines(),
        "",
        *_targets(old, new),
    ]
    return "\n".join(lines)


def _targets(old: dict[str, dict[str, float]], new: dict[str, dict[str, float]]) -> list[str]:
    """Issue 18's engine and batch targets, as ratios of the figures above."""
    rows = Table(["target (issue 18)", "measured", "verdict"])

    def ratio(label: str, value: float, goal: float, at_least: bool = True) -> None:
        met = value >= goal if at_least else value <= goal
        sign = "≥" if at_least else "≤"
        rows.row(label, f"{value:.2f}×", f"{'met' if met else 'not met'} (target {sign} {goal:g}×)")

    assess = old["engine.assess"]["mean"]
    ratio("`engine.assess`, durable_rules: old / new", assess / new["engine.assess"]["mean"], 2)
    ratio(
        "NDJSON line → output line, durable_rules: old / new",
        old["NDJSON line → output line"]["mean"] / new["NDJSON line → output line"]["mean"],
        2,
    )
    if "engine.assess [compiled]" in new:
        floor = new["program.run [compiled]"]["mean"]
        compiled = new["engine.assess [compiled]"]["mean"]
        ratio("`engine.assess`: old durable_rules / new compiled", assess / compiled, 5)
        ratio(
            "`engine.assess` durable_rules / generated-Python rules alone",
            new["engine.assess"]["mean"] / floor,
            15,
            at_least=False,
        )
        ratio("`engine.assess` compiled / generated-Python rules alone", compiled / floor, 15, at_least=False)
    per_core = 1e6 / new["engine.assess"]["mean"]
    return [
        *rows.lines(),
        "",
        f"One core: {per_core:,.0f} durable_rules assessments/s (old: {1e6 / assess:,.0f}/s).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="the git revision to compare with (default: main)")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of this tree's pipeline")
    parser.add_argument("--write", type=Path, help="put the report in this file's hotpath section")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, args.worker)
        print(json.dumps(_measure(args.patients)))
        return 0
    if args.profile:
        sys.path.insert(0, str(ROOT / "src"))
        _profile(args.patients)
        return 0
    publish(report(args.against, args.patients, args.reps), args.write, "hotpath")
    return 0


if __name__ == "__main__":
    sys.exit(main())
