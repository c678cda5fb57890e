"""``python -m fuzz``: run the fuzz harness (see ``fuzz/__init__.py``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from fuzz.run import run
from fuzz.seeds import case
from fuzz.targets import TARGETS


def main(argv: list[str] | None = None) -> int:
    """Run N cases and print the report; exit 1 on any disagreement, crash or undocumented exception."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=20_000, help="how many cases (default 20,000)")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (case i is rebuilt from it)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--target", choices=sorted(TARGETS), default="engine")
    parser.add_argument(
        "--show", type=int, metavar="INDEX", help="print case INDEX and its outcome, run nothing else"
    )
    args = parser.parse_args(argv)
    if args.show is not None:
        name, mutations, document = case(args.seed, args.show)
        print(f"case {args.show} from {name}, mutations {mutations}:")
        print(json.dumps(document, indent=2, default=str))
        print(TARGETS[args.target](document))
        return 0
    began = time.perf_counter()
    report = run(args.cases, seed=args.seed, workers=args.workers, target=args.target, progress=True)
    print(report.text())
    print(f"({time.perf_counter() - began:.0f} s)")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
