"""Throughput and latency of the first rule slice, measured side by side in one run.

Usage::

    make bench                                    # defaults below
    .venv/bin/python benchmarks/bench_slice.py --patients 5000 --reps 5 --out report.md

What is timed, per patient, interleaved in rotating order within every repetition
(so that machine noise hits all variants alike; compare the ratios, not the seconds):

* ``pipeline``   record + context → Assessment through durable_rules (facts, engine, assembly)
* ``engine``     the durable_rules program alone, on facts built beforehand
* ``reference``  record + context → Assessment through the pure-Python reference evaluator
* ``facts``      building the facts alone (value-set tagging, units, derived quantities)

The population is synthetic and deterministic (``--seed``); every patient is also
checked to get the same firings from both engines before anything is timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal

from ketacds import (
    AntidepressantTrial,
    Coding,
    Condition,
    Context,
    Engine,
    Medication,
    Observation,
    ObservationComponent,
    Patient,
    PatientRecord,
    Quantity,
)

NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
ROUTES = ("ketamine-iv", "esketamine-nasal")
JURISDICTIONS = ("US", "EU", "DE", "CA")
CONDITIONS = [
    ("icd-10-cm", "F33.2"),
    ("icd-10-cm", "F32.1"),
    ("snomed", "370143000"),
    ("icd-10-cm", "I71.40"),
    ("icd-10-cm", "Q28.2"),
    ("icd-10-cm", "I61.9"),
    ("icd-10-cm", "I10"),
    ("icd-10-cm", "E11.9"),
    ("icd-10-cm", "J45.909"),
]
MEDICATIONS = ["lorazepam", "clonazepam", "sertraline", "bupropion", "metformin", "lisinopril", "Xanax"]
DRUGS = ["sertraline", "escitalopram", "venlafaxine", "duloxetine", "bupropion", "mirtazapine"]


def synthetic_patient(rng: random.Random) -> tuple[PatientRecord, Context]:
    """One plausible patient: 1 patient fact, 1-3 conditions, 1-4 medications, 0-4 trials, 0-2 BPs."""
    conditions = tuple(
        Condition(code=Coding(system=s, code=c), clinical_status=rng.choice(["active", "active", "resolved"]))
        for s, c in rng.sample(CONDITIONS, rng.randint(1, 3))
    )
    medications = tuple(
        Medication(
            name=name,
            dose=Decimal(rng.choice([1, 2, 50, 100])),
            unit="mg",
            frequency_per_day=Decimal(rng.choice([1, 2])),
            as_needed=rng.random() < 0.2,
        )
        for name in rng.sample(MEDICATIONS, rng.randint(1, 4))
    )
    trials = tuple(
        AntidepressantTrial(
            name=name,
            dose=Decimal(rng.choice([20, 100, 225])),
            unit="mg",
            weeks=Decimal(rng.choice([3, 6, 8, 12])),
            response=rng.choice(["none", "partial", "response"]),
            adequate_dose=rng.choice([True, True, False, None]),
        )
        for name in rng.sample(DRUGS, rng.randint(0, 4))
    )
    observations = tuple(
        Observation(
            name="blood pressure",
            time=NOW - dt.timedelta(hours=rng.randint(0, 200)),
            components=(
                ObservationComponent(name="systolic", value=Decimal(rng.randint(100, 175)), unit="mmHg"),
                ObservationComponent(name="diastolic", value=Decimal(rng.randint(60, 105)), unit="mmHg"),
            ),
        )
        for _ in range(rng.randint(0, 2))
    )
    patient = Patient(
        age_years=rng.randint(18, 85),
        sex=rng.choice(["female", "male", None]),
        weight=Quantity(value=Decimal(rng.randint(45, 140)), unit="kg") if rng.random() < 0.9 else None,
        height=Quantity(value=Decimal(rng.randint(150, 195)), unit="cm"),
    )
    record = PatientRecord(
        patient=patient,
        conditions=conditions,
        medications=medications,
        trials=trials,
        observations=observations,
    )
    context = Context(route=rng.choice(ROUTES), jurisdiction=rng.choice(JURISDICTIONS), now=NOW)
    return record, context


def percentile(sorted_ns: list[int], q: float) -> float:
    """The q-th percentile in microseconds (nearest rank)."""
    index = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    population = [synthetic_patient(rng) for _ in range(args.patients)]
    engine = Engine()
    prepared = []
    facts_per_patient = []
    for record, context in population:
        facts, durable = engine.evaluate(record, context)
        _, reference = engine.evaluate(record, context, backend="reference")
        if durable != reference:
            print(f"engines disagree on a patient: {record}", file=sys.stderr)
            return 1
        prepared.append((engine._program(context.route, context.jurisdiction), facts.facts))
        facts_per_patient.append(len(facts.facts))

    variants: dict[str, Callable[[int], object]] = {
        "pipeline": lambda i: engine.assess(*population[i]),
        "engine": lambda i: prepared[i][0].run(prepared[i][1]),
        "reference": lambda i: engine.assess(*population[i], backend="reference"),
        "facts": lambda i: engine.facts(*population[i]),
    }
    gc.collect()
    gc.freeze()  # as a worker would after loading rules and data: no full collections of static data
    samples: dict[str, list[int]] = {name: [] for name in variants}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for rep in range(args.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            run = variants[name]
            start = time.perf_counter()
            for i in range(len(population)):
                t0 = time.perf_counter_ns()
                run(i)
                samples[name].append(time.perf_counter_ns() - t0)
            walls[name].append(time.perf_counter() - start)

    lines = [
        f"# ketacds slice benchmark ({args.patients} patients x {args.reps} reps, seed {args.seed})",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"ruleset digest {engine.digest[:16]}..., "
        f"{len(engine.ruleset.rules)} rules; facts per patient: mean "
        f"{statistics.mean(facts_per_patient):.1f}, max {max(facts_per_patient)}.",
        "",
        "| variant | assessments/s (median rep) | p50 µs | p99 µs | time ÷ pipeline |",
        "|---|---:|---:|---:|---:|",
    ]
    pipeline_rate = args.patients / statistics.median(walls["pipeline"])
    for name in names:
        ns = sorted(samples[name])
        rate = args.patients / statistics.median(walls[name])
        lines.append(
            f"| {name} | {rate:,.0f} | {percentile(ns, 0.50):.0f} | {percentile(ns, 0.99):.0f} | "
            f"{pipeline_rate / rate:.2f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
