"""The assessment hot path, stage by stage, this tree beside an older revision (issue 18).

Usage::

    .venv/bin/python benchmarks/hotpath.py                      # this tree against main
    .venv/bin/python benchmarks/hotpath.py --against b325944 --patients 2000 --reps 3
    .venv/bin/python benchmarks/hotpath.py --profile            # cProfile of this tree only

Each side runs in its own subprocess that imports ``ketacds`` from its own source tree
(the older revision is unpacked with ``git archive`` into a temporary directory). The
two sides alternate over ``--reps`` repetitions so that machine noise hits both alike;
each stage's figure is the best repetition's CPU time (``time.process_time``) divided by
the number of patients. Stages:

* ``load_case`` — the case document into models (validation included);
* ``engine.facts`` — the records into facts (content ids included);
* ``program.run`` — ``engine.evaluate`` minus ``engine.facts`` (the backend's firings);
* ``assemble`` — firings into an Assessment (``engine.assess`` minus ``engine.evaluate``);
* ``engine.assess`` — the whole engine call;
* ``to_json`` — ``Assessment.to_json``;
* ``load→assess→to_json`` — a case document to its JSON text.

Cases the engine refuses (a ``KetacdsError``) are left out of every stage, on both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = (
    "load_case",
    "engine.facts",
    "program.run",
    "assemble",
    "engine.assess",
    "to_json",
    "load→assess→to_json",
)


def _measure(patients: int, profile: bool) -> dict[str, float]:
    """Time every stage on ``patients`` synthetic cases with the ``ketacds`` on ``sys.path``."""
    from ketacds import Engine
    from ketacds.errors import KetacdsError
    from ketacds.models.load import load_case
    from ketacds.synthetic import synthetic_cases

    engine = Engine()
    cases = []
    for data in synthetic_cases(patients):
        try:
            record, context = load_case(data)
            engine.assess(record, context).to_json()
        except KetacdsError:
            continue
        cases.append(data)
    loaded = [load_case(data) for data in cases]
    assessments = [engine.assess(r, c) for r, c in loaded]

    def stage_load() -> None:
        for data in cases:
            load_case(data)

    def stage_facts() -> None:
        for r, c in loaded:
            engine.facts(r, c)

    def stage_evaluate() -> None:
        for r, c in loaded:
            engine.evaluate(r, c)

    def stage_assess() -> None:
        for r, c in loaded:
            engine.assess(r, c)

    def stage_json() -> None:
        for a in assessments:
            a.to_json()

    def stage_pipeline() -> None:
        for data in cases:
            r, c = load_case(data)
            engine.assess(r, c).to_json()

    stages = {
        "load_case": stage_load,
        "engine.facts": stage_facts,
        "engine.evaluate": stage_evaluate,
        "engine.assess": stage_assess,
        "to_json": stage_json,
        "load→assess→to_json": stage_pipeline,
    }
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        stage_pipeline()
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(40)
        return {}
    result: dict[str, float] = {}
    for name, run in stages.items():
        start = time.process_time()
        run()
        result[name] = (time.process_time() - start) / len(cases) * 1e6
    result["program.run"] = result["engine.evaluate"] - result["engine.facts"]
    result["assemble"] = result["engine.assess"] - result["engine.evaluate"]
    result["patients"] = len(cases)
    return result


def _side(src: Path, patients: int) -> dict[str, float]:
    """One repetition on one side, in a subprocess importing ``ketacds`` from ``src``."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(src), "--patients", str(patients)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="the git revision to compare with (default: main)")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of this tree's pipeline")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, args.worker)
        print(json.dumps(_measure(args.patients, args.profile)))
        return 0
    if args.profile:
        sys.path.insert(0, str(ROOT / "src"))
        _measure(args.patients, True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", args.against, "src", "rulesets"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        sides = {"old": Path(tmp) / "src", "new": ROOT / "src"}
        best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
        for rep in range(args.reps):
            for side in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                for stage, value in _side(sides[side], args.patients).items():
                    best[side][stage] = min(best[side].get(stage, value), value)
    print(
        f"CPU µs per patient ({int(best['new']['patients'])} patients, best of {args.reps}); "
        f"old = {args.against}, new = this tree"
    )
    print(f"{'stage':<22}{'old':>10}{'new':>10}{'old/new':>10}")
    for stage in STAGES:
        old, new = best["old"][stage], best["new"][stage]
        print(f"{stage:<22}{old:>10.1f}{new:>10.1f}{old / new:>9.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
