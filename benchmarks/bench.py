"""The performance report: throughput, latency and scaling, every variant side by side.

Usage::

    make bench                                          # writes the report into docs/performance.md
    .venv/bin/python benchmarks/bench.py --patients 10000 --reps 3 --write docs/performance.md
    .venv/bin/python benchmarks/bench.py --quick        # a smoke run, printed only

What it measures, on a deterministic synthetic population (``ketacds.synthetic``):

1. per assessment, every variant timed per call, interleaved in rotating order in every
   repetition so that machine noise hits all alike (compare ratios, not seconds):
   the full pipeline (record → Assessment, and NDJSON case line → output line), the
   durable_rules engine alone, the reference evaluator (pipeline and engine alone),
   fact building and assembly alone, and a hand-written plain-Python evaluation of a
   fixed subset of 15 rules beside durable_rules and the reference on the same subset;
2. how cost grows with the number of rules (synthetic rulesets, 10 → 490) and with
   the number of facts per patient (about 10 → 200);
3. batch throughput (``run_batch``) on 1 and 2 worker processes, and on a local Dask
   cluster of 2, at steady state (from the first committed chunk to the last).

Memory growth over 10^6 assessments is ``benchmarks/bench_memory.py`` (``make
bench-memory``); the engine before and after a change is ``benchmarks/compare.py``.
Before anything is timed, every patient is checked to get the same firings from
durable_rules and the reference evaluator, and the floor the same firings as
durable_rules on its subset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ketacds import Engine, __version__, load_case, load_ruleset
from ketacds.batch import BatchOptions, NdjsonReader, run_batch
from ketacds.batch.work import assessment_line
from ketacds.engine.backends import durable as durable_backend
from ketacds.engine.backends.durable import capacity as durable_capacity
from ketacds.engine.reference import evaluate
from ketacds.models.load import load_context
from ketacds.ruleset.plan import stratify
from ketacds.synthetic import synthetic_cases
from report import Table, percentile, publish
from workloads import FLOOR_RULES, PlainFloor, synthetic_rules


def timed(variants: dict[str, Callable[[int], object]], count: int, reps: int) -> dict[str, dict[str, Any]]:
    """Run each variant on items 0..count-1, interleaved and rotated; per-call wall and CPU times."""
    names = list(variants)
    wall: dict[str, list[int]] = {name: [] for name in names}
    cpu: dict[str, list[int]] = {name: [] for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            run = variants[name]
            began = time.perf_counter()
            for i in range(count):
                w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                run(i)
                c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
                wall[name].append(w1 - w0)
                cpu[name].append(c1 - c0)
            rates[name].append(count / (time.perf_counter() - began))
    results = {}
    for name in names:
        w, c = sorted(wall[name]), sorted(cpu[name])
        results[name] = {
            "rate": statistics.median(rates[name]),
            "p50": percentile(w, 0.5),
            "p99": percentile(w, 0.99),
            "cpu_p50": percentile(c, 0.5),
            "cpu_p99": percentile(c, 0.99),
            "cpu_mean": statistics.fmean(c) / 1000,
        }
    return results


def latency_section(
    engine: Engine, cases: list[dict[str, Any]], reps: int
) -> tuple[list[str], dict[str, Any]]:
    population = [load_case(case) for case in cases]
    lines = [json.dumps(case).encode() for case in cases]
    reader = NdjsonReader()
    facts, programs, raws = [], [], []
    for record, context in population:
        built, durable = engine.evaluate(record, context)
        _, reference = engine.evaluate(record, context, backend="reference")
        if durable != reference:
            raise SystemExit(f"engines disagree on {record.patient.id}")
        facts.append(built)
        programs.append(engine.warm(context.route, context.jurisdiction))
        raws.append(durable)
    rules = [engine.rules_for(c.route, c.jurisdiction) for _, c in population]
    floor = PlainFloor(engine.ruleset)
    subset = tuple(engine.ruleset.rule(rule_id) for rule_id in FLOOR_RULES)
    subset_strata = stratify(subset)
    subset_program = durable_backend.DurableProgram("floor", subset, subset_strata)
    for built in facts:
        durable_fired = {(f.rule_id, f.facts) for f in subset_program.run(built.facts).firings}
        if floor.fire(built.facts) != durable_fired:
            raise SystemExit("the plain floor and durable_rules disagree on the floor's rules")
    assemblers = [engine._assembler(c.route, c.jurisdiction, "durable") for _, c in population]

    def line(i: int) -> str:
        record, own = reader.decode(lines[i])
        assessment = engine.assess(record, load_context(own))
        return assessment_line(_Item(i), record.patient.id, assessment)

    variants: dict[str, Callable[[int], object]] = {
        "pipeline: record → Assessment (durable_rules)": lambda i: engine.assess(*population[i]),
        "pipeline: NDJSON case line → output line": line,
        "durable_rules engine alone (facts built)": lambda i: programs[i].run(facts[i].facts),
        "reference pipeline: record → Assessment": lambda i: engine.assess(
            *population[i], backend="reference"
        ),
        "reference evaluator alone (facts built)": lambda i: evaluate(
            rules[i], engine.strata, facts[i].facts
        ),
        "building facts alone": lambda i: engine.facts(*population[i]),
        "assembling the Assessment alone": lambda i: assemblers[i].assemble(
            facts[i], raws[i], population[i][1]
        ),
        "Assessment.to_json alone": None,  # filled below
        f"floor: plain Python, {len(subset)} rules": lambda i: floor.fire(facts[i].facts),
        f"durable_rules, the same {len(subset)} rules": lambda i: subset_program.run(facts[i].facts),
        f"reference, the same {len(subset)} rules": lambda i: evaluate(subset, subset_strata, facts[i].facts),
    }
    assessments = [engine.assess(*p) for p in population]
    variants["Assessment.to_json alone"] = lambda i: assessments[i].to_json()
    gc.collect()
    gc.freeze()
    results = timed(variants, len(population), reps)
    pipeline = results["pipeline: record → Assessment (durable_rules)"]
    floor_cpu = results[f"floor: plain Python, {len(subset)} rules"]["cpu_mean"]
    table = Table(
        ["variant", "assessments/s", "p50 µs", "p99 µs", "CPU p50 µs", "CPU p99 µs", "÷ pipeline", "× floor"]
    )
    for name, r in results.items():
        table.row(
            name,
            f"{r['rate']:,.0f}",
            f"{r['p50']:.0f}",
            f"{r['p99']:.0f}",
            f"{r['cpu_p50']:.0f}",
            f"{r['cpu_p99']:.0f}",
            f"{r['cpu_mean'] / pipeline['cpu_mean']:.2f}",
            f"{r['cpu_mean'] / floor_cpu:.1f}",
        )
    count = [len(f.facts) for f in facts]
    firings = [len(r.firings) for r in raws]
    text = [
        "### Per assessment, side by side",
        "",
        f"{len(population):,} synthetic patients × {reps} repetitions, every variant timed per call, "
        f"interleaved in rotating order. Facts per patient: mean {statistics.fmean(count):.1f}, "
        f"max {max(count)}; distinct firings per patient: mean {statistics.fmean(firings):.1f}. "
        f"durable_rules and the reference evaluator agree on every patient; the floor fires "
        f"exactly what durable_rules fires for its {len(subset)} rules. *assessments/s* is the "
        "median repetition's wall-clock rate; *p50/p99* are wall-clock per call; the CPU columns "
        "are this thread's CPU time per call (what other tenants of a shared machine cannot "
        "inflate); the ratios are of mean CPU time.",
        "",
        *table.lines(),
    ]
    return text, results


class _Item:
    def __init__(self, index: int) -> None:
        self.index = index
        self.source = f"population.ndjson:{index + 1}"


def _engines(program: Any, rules: Any, strata: Any, facts: list[Any]) -> dict[str, Callable[[int], object]]:
    return {
        "durable": lambda i: program.run(facts[i]),
        "reference": lambda i: evaluate(rules, strata, facts[i]),
    }


def rules_section(engine: Engine, cases: list[dict[str, Any]], sizes: Sequence[int]) -> list[str]:
    facts = [engine.facts(*load_case(case)).facts for case in cases]
    # ketacds refuses more than 60 rules reading one fact type (durable_rules' 64-per-fact
    # stack); the synthetic rulesets exceed that on purpose, to measure durable_rules itself.
    durable_capacity.MAX_RULES_PER_FACT_TYPE = 10**6
    table = Table(["rules", "firings/patient", "durable_rules µs", "reference µs", "durable ÷ reference"])
    for size in sizes:
        rules = synthetic_rules(engine.ruleset, size)
        strata = stratify(rules)
        program = durable_backend.DurableProgram(f"rules_{size}", rules, strata)
        for built in facts:
            if program.run(built) != evaluate(rules, strata, built):
                raise SystemExit(f"engines disagree with {size} synthetic rules")
        gc.collect()
        results = timed(_engines(program, rules, strata, facts), len(facts), 2)
        fired = statistics.fmean(len(program.run(f).firings) for f in facts)
        d, r = results["durable"]["cpu_mean"], results["reference"]["cpu_mean"]
        table.row(str(size), f"{fired:.1f}", f"{d:,.0f}", f"{r:,.0f}", f"{d / r:.2f}")
        program.close()
    durable_capacity.MAX_RULES_PER_FACT_TYPE = 60
    return [
        "### Cost as the rules grow",
        "",
        "Synthetic rulesets (`benchmarks/workloads.py`: conditions, medications, readings over a "
        "threshold, a join with the patient, derived flags read by later rules, negations), "
        f"{len(facts)} synthetic patients, engines alone, mean CPU µs per patient; both engines "
        "agree on every patient at every size.",
        "",
        *table.lines(),
    ]


def _record_variants(
    engine: Engine, population: list[Any], facts: list[Any]
) -> dict[str, Callable[[int], object]]:
    programs = [engine.warm(c.route, c.jurisdiction) for _, c in population]
    rules = [engine.rules_for(c.route, c.jurisdiction) for _, c in population]
    for built, program, scoped in zip(facts, programs, rules, strict=True):
        if program.run(built.facts) != evaluate(scoped, engine.strata, built.facts):
            raise SystemExit("engines disagree on large records")
    return {
        "pipeline": lambda i: engine.assess(*population[i]),
        "durable": lambda i: programs[i].run(facts[i].facts),
        "reference": lambda i: evaluate(rules[i], engine.strata, facts[i].facts),
        "facts": lambda i: engine.facts(*population[i]),
    }


def facts_section(engine: Engine, ruleset: Any, extras: Sequence[int], patients: int) -> list[str]:
    table = Table(
        ["facts/patient", "pipeline µs", "durable_rules engine µs", "reference engine µs", "facts µs"]
    )
    for extra in extras:
        population = [load_case(c) for c in synthetic_cases(patients, ruleset=ruleset, extra_items=extra)]
        facts = [engine.facts(*p) for p in population]
        variants = _record_variants(engine, population, facts)
        gc.collect()
        results = timed(variants, len(population), 2)
        mean = statistics.fmean(len(f.facts) for f in facts)
        table.row(f"{mean:.0f}", *(f"{results[k]['cpu_mean']:,.0f}" for k in variants))
    return [
        "### Cost as records grow",
        "",
        "The synthetic population with extra items per patient (older readings, stopped "
        f"medications, resolved conditions), {patients} patients per row, bundled rules, mean "
        "CPU µs per patient; both engines agree on every patient.",
        "",
        *table.lines(),
    ]


def _cpu_seconds() -> float:
    """CPU time of this process and of its (finished) children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _Stamps:
    """A progress sink that notes when each chunk was committed."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, int]] = []

    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, records: int) -> None:
        self.stamps.append((time.perf_counter(), records))


def batch_section(ruleset: Any, records: int, reps: int, chunk: int) -> list[str]:
    runs = [("1 worker (in process)", {"workers": 1}), ("2 worker processes", {"workers": 2})]
    runs.append(("Dask LocalCluster, 2 workers", {"workers": 2, "dask": "local"}))
    steady: dict[str, list[float]] = {name: [] for name, _ in runs}
    total: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in runs}  # (CPU s, wall s)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "population.ndjson"
        with source.open("w", encoding="utf-8") as handle:
            for case in synthetic_cases(records, ruleset=ruleset, seed=99):
                handle.write(json.dumps(case) + "\n")
        outputs: dict[str, bytes] = {}
        for rep in range(reps):
            for name, extra in runs if rep % 2 == 0 else reversed(runs):
                if "dask" in extra and rep > 0:
                    continue  # one Dask run is enough to show it scales like the pool
                out = Path(folder) / f"out-{rep}-{len(outputs)}-{extra['workers']}-{'dask' in extra}"
                stamps = _Stamps()
                before = _cpu_seconds()
                began = time.perf_counter()
                run_batch(
                    BatchOptions(input=source, out=out, reader=NdjsonReader(), chunk_size=chunk, **extra),
                    stamps,
                )
                wall = time.perf_counter() - began
                total[name].append(records / wall)
                cpu[name].append((_cpu_seconds() - before, wall))
                first, last = stamps.stamps[0][0], stamps.stamps[-1][0]
                steady[name].append(sum(n for _, n in stamps.stamps[1:]) / (last - first))
                outputs[name] = (out / "assessments.ndjson").read_bytes()
        if len(set(outputs.values())) != 1:
            raise SystemExit("batch outputs differ between worker set-ups")
    head = [
        "run",
        "records/s, steady state",
        "× 1 worker",
        "records/s overall",
        "CPU ms/record",
        "cores used",
    ]
    table = Table(head)
    base = statistics.median(steady[runs[0][0]])
    for name, _ in runs:
        rate = statistics.median(steady[name])
        seconds = statistics.median(c for c, _ in cpu[name])
        cores = statistics.median(c / w for c, w in cpu[name])
        table.row(
            name,
            f"{rate:,.0f}",
            f"{rate / base:.2f}",
            f"{statistics.median(total[name]):,.0f}",
            f"{1000 * seconds / records:.2f}",
            f"{cores:.2f}",
        )
    return [
        "### Batch: 1 → 2 workers",
        "",
        f"`run_batch` on {records:,} synthetic NDJSON cases (chunks of {chunk}), median of {reps} "
        "runs (Dask: one run); *steady state* is from the first committed chunk to the last, "
        "so it leaves out loading the rules and starting the workers; *overall* includes them. "
        "*CPU ms/record* counts this process and its workers (start-up included); *cores used* "
        "is that CPU time over the wall time: what the machine actually gave the run, beside "
        "its other tenants. Every set-up wrote byte-identical `assessments.ndjson`.",
        "",
        *table.lines(),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-records", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--write", type=Path, help="replace the generated section of this Markdown file")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.reps, args.batch_records = 300, 1, 600
    load_before = os.getloadavg()
    began = time.perf_counter()
    ruleset = load_ruleset()
    engine = Engine.from_ruleset(ruleset)
    generated = time.perf_counter()
    cases = list(synthetic_cases(args.patients, ruleset=ruleset))
    generation = time.perf_counter() - generated
    sections: list[str] = []
    latency, results = latency_section(engine, cases, args.reps)
    sections += latency
    sizes = (10, 50) if args.quick else (10, 50, 100, 200, 350, 490)
    sections += ["", *rules_section(engine, cases[: min(1000, len(cases))], sizes)]
    extras = (0, 40) if args.quick else (0, 15, 40, 90, 190)
    sections += ["", *facts_section(engine, ruleset, extras, 60 if args.quick else 300)]
    sections += [
        "",
        *batch_section(ruleset, args.batch_records, 1 if args.quick else 3, 100 if args.quick else 250),
    ]
    load_after = os.getloadavg()
    header = [
        f"Generated by `benchmarks/bench.py --patients {args.patients} --reps {args.reps} "
        f"--batch-records {args.batch_records}` on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d} in {time.perf_counter() - began:.0f} s: Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end (other tenants); "
        f"ketacds {__version__}, rules {ruleset.name} {ruleset.version} ({len(ruleset.rules)} rules), "
        f"{durable_backend.ENGINE_NAME}. The synthetic population was generated at "
        f"{len(cases) / generation:,.0f} patients/s.",
        "",
    ]
    report = "\n".join(header + sections) + "\n"
    publish(report, args.write, "bench")
    pipeline = results["pipeline: record → Assessment (durable_rules)"]
    print(f"pipeline: {pipeline['rate']:,.0f}/s, p50 {pipeline['p50']:.0f} µs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
