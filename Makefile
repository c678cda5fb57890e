# Two commands matter (see README.md):
#   make demo   create .venv, install ketacds, assess every example patient
#   make test   install the test, lint and batch extras, run ruff, the ruleset linter, mypy and the tests
# After a change to rulesets/: make docs (regenerate docs/rules/ and docs/clinical-coverage.md) and make golden.
# The first of python3.11, python3.12, python3 that runs and is 3.11 or newer (a pyenv shim
# for a version that is not installed is on PATH but does not run). PYTHON=... to choose.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && command -v $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit scenarios fuzz bench bench-memory bench-compare load golden docs snapshot clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || { \
	  echo "error: no Python 3.11+ that runs ('$(PYTHON)'); give one: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; \
	  exit 2; }
	$(PYTHON) -m venv $(VENV)

demo: $(BIN)/python
	$(PIP) install .
	$(BIN)/ketacds assess examples/*.yaml

test: $(BIN)/python
	$(PIP) install ".[test,lint,batch]"
	$(MAKE) --no-print-directory lint typecheck unit scenarios

lint:
	$(BIN)/ruff check src tests benchmarks fuzz tools
	$(BIN)/ketacds rules lint rulesets

typecheck:
	$(BIN)/mypy

# The tests run on WORKERS processes (pytest-xdist; default: one per core; an idle worker
# takes tests queued for a busy one, so no long test is left waiting at the end); pytest-cov
# measures each and combines them, so the coverage floor (pyproject.toml) covers all.
WORKERS ?= auto
unit:
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal --hypothesis-profile=ci --cov --cov-report=
	$(BIN)/python -m coverage report

# The project's scenario suite through the CLI (pytest has already run it, one item per
# scenario): JUnit XML, rule coverage (every R and S rule must fire in some scenario) and
# rule mutation testing, with Markdown reports in build/reports/. A few seconds.
REPORTS := build/reports
scenarios:
	$(BIN)/ketacds scenarios run --quiet --junit-xml $(REPORTS)/scenarios.xml tests/scenarios
	$(BIN)/ketacds scenarios coverage --quiet --fail-under-rs 100 --markdown $(REPORTS)/rule-coverage.md tests/scenarios
	$(BIN)/ketacds scenarios mutate --quiet --markdown $(REPORTS)/rule-mutation.md tests/scenarios

# The fuzz harness (fuzz/__init__.py), four targets in turn (one target: make fuzz TARGET=cli):
#   engine   N mutated cases seeded from examples/ and tests/scenarios/, durable_rules against
#            the reference evaluator (fails on a disagreement, crash or undocumented exception);
#   loader   LOADER_N case files and FHIR bundles mutated as bytes, read and assessed;
#   cli      CLI_N of those files through `ketacds assess` as a subprocess (start-up subtracted);
#   service  SERVICE_N mutated CDS Hooks requests to one real service on 127.0.0.1.
# The last three fail on any exception outside ketacds.errors, traceback, exit code other than
# 0/2/3, HTTP 5xx, dropped connection, or case over 2 s. Each case runs in a worker process
# (a crash is counted, not fatal). Measured with FUZZ_WORKERS=2 on 2 cores: engine 20,000 cases
# in 17 s, loader 10,000 in 16 s, cli 40 in 51 s (each `ketacds assess` starts up in 2.3 s,
# which is subtracted), service 3,000 in 23 s: about 2 minutes in all; 4.5 minutes while
# another test run shared the cores (load average 6). The suite (tests/unit/test_fuzz.py)
# runs each target small (about 30 s in all).
# make fuzz N=100000 LOADER_N=100000 SEED=7 FUZZ_WORKERS=4
N ?= 20000
LOADER_N ?= 10000
CLI_N ?= 40
SERVICE_N ?= 3000
SEED ?= 1
FUZZ_WORKERS ?= 2
TARGET ?= all
fuzz: $(BIN)/python
	$(BIN)/python -m fuzz --target $(TARGET) --cases $(N) --loader-cases $(LOADER_N) \
	  --cli-cases $(CLI_N) --service-cases $(SERVICE_N) --seed $(SEED) --workers $(FUZZ_WORKERS)

# The performance report (about 25 minutes); rewrites the generated parts of docs/performance.md:
#   bench.py    throughput, latency, scaling with rules and facts, batch on 1 and 2 workers;
#   hotpath.py  every stage of an assessment, this tree beside BENCH_BASE in one run (issue 18);
#   load_cds.py the CDS Hooks service (JWT on) at 50, 100 and 200 requests/s: CPU per request
#               and latency, this tree beside BENCH_BASE in one run; then again with every
#               call about a new patient (--new-patients: no per-process cache hits).
# BENCH_BASE is the previous main to compare with (default: main before issue 18, b325944).
BENCH_BASE ?= b325944
bench: $(BIN)/python
	$(PIP) install ".[batch,server]" psutil
	$(BIN)/python benchmarks/bench.py --write docs/performance.md
	$(BIN)/python benchmarks/hotpath.py --against $(BENCH_BASE) --write docs/performance.md
	$(BIN)/python benchmarks/load_cds.py --rates 50,100,200 --against $(BENCH_BASE) --write docs/performance.md
	$(BIN)/python benchmarks/load_cds.py --rates 50,100,200 --duration 20 --new-patients --against $(BENCH_BASE) --write docs/performance.md

# Memory over 10^6 assessments (10 to 20 minutes).
bench-memory: $(BIN)/python
	$(PIP) install .
	$(BIN)/python benchmarks/bench_memory.py --write docs/performance.md

# The engine at git revision BASE and now, side by side (default: main before issue 8 merged)
BASE ?= 901b33d
bench-compare: $(BIN)/python
	$(PIP) install .
	$(BIN)/python benchmarks/compare.py --base $(BASE) --write docs/performance.md

# The CDS Hooks service under load (JWT on), this tree beside main in one run: CPU per request and
# latency at 50, 100 and 200 requests/s (benchmarks/load_cds.py --help for the options).
load: $(BIN)/python
	$(PIP) install ".[server]" psutil
	$(BIN)/python benchmarks/load_cds.py --against main

# Fingerprints of every Assessment on a fixed corpus (scenarios, examples, 10,000 synthetic
# patients): a restructuring must leave them all identical (tools/snapshot.py). About a minute.
#   make snapshot SNAPSHOT=build/before.tsv            (on the old revision)
#   make snapshot SNAPSHOT=build/after.tsv COMPARE=build/before.tsv
SNAPSHOT ?= build/snapshot.tsv
snapshot: $(BIN)/python
	$(BIN)/python tools/snapshot.py --out $(SNAPSHOT) $(if $(COMPARE),--compare $(COMPARE))

golden: $(BIN)/python
	$(BIN)/python -m pytest tests/unit/ruleset/test_golden.py --update-golden

docs: $(BIN)/python
	$(PIP) install .
	$(BIN)/ketacds rules docs rulesets --out docs/rules
	$(BIN)/ketacds rules coverage rulesets --out docs/clinical-coverage.md

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .coverage
