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
    parser.add_argument("--loader-cases", type=int, help="cases of the loader target (default: --cases)")
    parser.add_argument("--cli-cases", type=int, help="cases of the cli target (with all, default 40)")
    parser.add_argument(
        "--service-cases", type=int, help="requests of the service target (with all, default 3,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (case i is rebuilt from it)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--target",
        choices=[*sorted(TARGETS), "all"],
        default="engine",
        help="engine (default), loader, cli, service, or all four in turn",
    )
    parser.add_argument(
        "--show", type=int, metavar="INDEX", help="print case INDEX and its outcome, run nothing else"
    )
    args = parser.parse_args(argv)
    if args.show is not None:
        return _show(args.target, args.seed, args.show)
    given = {"loader": args.loader_cases, "cli": args.cli_cases, "service": args.service_cases}
    if args.target != "all":
        own = given.get(args.target)
        sizes = {args.target: args.cases if own is None else own}
    else:
        sizes = {
            "engine": args.cases,
            "loader": args.cases if args.loader_cases is None else args.loader_cases,
            "cli": 40 if args.cli_cases is None else args.cli_cases,
            "service": 3000 if args.service_cases is None else args.service_cases,
        }
    failed = False
    summary = []
    for target, cases in sizes.items():
        began = time.perf_counter()
        report = run(cases, seed=args.seed, workers=args.workers, target=target, progress=True)
        seconds = time.perf_counter() - began
        print(report.text())
        print(f"({seconds:.0f} s)", flush=True)
        failed = failed or report.failed
        failures = (
            report.failures
            if target != "engine"
            else sum(report.kinds[k] for k in ("disagreement", "crash", "undocumented", "hang-killed"))
        )
        summary.append(f"  {target:<8}{report.cases:>8} cases{failures:>6} failures  {seconds:>5.0f} s")
    if len(sizes) > 1:
        print("all targets:\n" + "\n".join(summary) + ("\nFAILED" if failed else "\nOK"))
    return 1 if failed else 0


def _show(target: str, seed: int, index: int) -> int:
    """Print case ``index`` of ``target`` and its outcome (the cli and service targets: what they read)."""
    from fuzz.run import CASES

    if target == "all":
        target = "engine"
    name, mutations, document = CASES.get(target, case)(seed, index)
    print(f"case {index} from {name}, mutations {mutations}:")
    if target == "engine":
        print(json.dumps(document, indent=2, default=str))
        print(TARGETS[target](document))
        return 0
    raw = document[2] if target != "service" else document[1]
    print(raw[:4000].decode("utf-8", "replace") + (f"... ({len(raw)} bytes)" if len(raw) > 4000 else ""))
    if target == "service":
        from fuzz.service import fuzzed_service
        from fuzz.targets import CONFIG

        with fuzzed_service() as url:
            CONFIG["url"] = url
            print(TARGETS[target](document))
        return 0
    if target == "cli":
        from fuzz.targets import CONFIG, cli_startup

        CONFIG["startup"] = cli_startup()
    print(TARGETS[target](document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
