"""CPU per assessment with each engine backend, side by side in one process.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/backends.py              # 2,000 patients, 3 repetitions
    PYTHONPATH=src .venv/bin/python benchmarks/backends.py --patients 500 --reps 1

On a deterministic synthetic population (``ketacds.synthetic``), every patient is first
checked to get the same firings from durable_rules and the compiled backend (and the same
Assessment JSON, the engine named in provenance apart). Then, per call and interleaved
(durable and compiled alternate on every patient, the order rotating per repetition, so
that machine noise hits both alike), it times the CPU of

* ``engine.assess`` (record → Assessment) with each backend, and
* ``program.run`` alone (facts → firings) with each backend,

and prints the means, medians and p99 in µs and the ratio durable / compiled.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from ketacds import Engine, load_case
from ketacds.engine.backends.compiled import COMPILED_ENGINE_NAME
from ketacds.engine.backends.durable import ENGINE_NAME as DURABLE_ENGINE_NAME
from ketacds.synthetic import synthetic_cases


def _cpu_us(call: Callable[..., object], *args: object) -> float:
    began = time.process_time_ns()
    call(*args)
    return (time.process_time_ns() - began) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)

    cases = [load_case(case) for case in synthetic_cases(args.patients)]
    durable, compiled = Engine(), Engine(backend="compiled")
    facts = []
    for record, context in cases:  # check first: same firings, same Assessment
        found, fired = durable.evaluate(record, context)
        assert fired == compiled.evaluate(record, context)[1], "the backends' firings differ"
        expected = durable.assess(record, context).to_json()
        got = compiled.assess(record, context).to_json()
        assert got.replace(COMPILED_ENGINE_NAME, DURABLE_ENGINE_NAME) == expected, "the Assessments differ"
        facts.append((found.facts, context))
    programs = {
        name: {(c.route, c.jurisdiction): engine.warm(c.route, c.jurisdiction) for _, c in cases}
        for name, engine in (("durable", durable), ("compiled", compiled))
    }
    engines = {"durable": durable, "compiled": compiled}
    times: dict[str, list[float]] = {f"{stage} {name}": [] for stage in ("assess", "run") for name in engines}
    gc.collect()
    for rep in range(args.reps):
        order = list(engines) if rep % 2 == 0 else list(reversed(engines))
        for (record, context), (fact_list, _) in zip(cases, facts, strict=True):
            for name in order:
                times[f"assess {name}"].append(_cpu_us(engines[name].assess, record, context))
                program = programs[name][(context.route, context.jurisdiction)]
                times[f"run {name}"].append(_cpu_us(program.run, fact_list))
    print(f"{len(cases)} synthetic patients x {args.reps} repetitions, CPU µs per call (process time)")
    print(f"{'':18} {'mean':>8} {'p50':>8} {'p99':>8}")
    for label, values in times.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{label:18} {statistics.fmean(values):8.1f} {statistics.median(values):8.1f} {p99:8.1f}")
    for stage in ("assess", "run"):
        ratio = statistics.fmean(times[f"{stage} durable"]) / statistics.fmean(times[f"{stage} compiled"])
        print(f"{stage}: durable / compiled = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
