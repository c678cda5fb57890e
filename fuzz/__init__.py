"""The ketacds fuzz harness: mutated input against the engine, the readers, the CLI and the service.

Each case runs in a worker process, so a crash is counted and never fatal to the run.
Four targets (``--target``; ``all`` runs them in turn, as ``make fuzz`` does):

``engine``
    Mutated documents, durable_rules against the reference evaluator (below).
``loader``
    Case files (JSON, YAML) and FHIR Bundles mutated as *bytes* (:mod:`fuzz.raw`):
    truncation, flipped bytes, non-UTF-8, deep nesting, duplicate keys, huge and odd
    numbers, YAML aliases and tags, wrong types; read with ``parse_document`` /
    ``load_case`` / ``read_bundle`` and assessed.
``cli``
    A sample of the same files through ``ketacds assess`` as a subprocess: exit 0, 2
    (one line on stderr) or 3, never a traceback. Each worker times the CLI on an
    unmutated example (median of 3) and subtracts that start-up from each case.
``service``
    Mutated CDS Hooks requests (prefetch and draft orders cut from the Synthea bundles,
    and the specification's examples; data and byte mutators) posted to ONE real
    service on 127.0.0.1 (:mod:`fuzz.service`): never a 5xx, never a dropped connection.

For loader, cli and service any case over 2 s is a failure too (the engine target
reports such cases but fails only on one that never ends).

Run it with ``make fuzz`` (sizes: ``N``, ``LOADER_N``, ``CLI_N``, ``SERVICE_N``; timings
in the Makefile) or::

    .venv/bin/python -m fuzz --cases 20000 --workers 2 --seed 1
    .venv/bin/python -m fuzz --target loader --cases 10000
    .venv/bin/python -m fuzz --target cli --seed 1 --show 17   # replay one case

It is not part of the shipped package (``src/ketacds``): it lives in the repository
beside ``benchmarks/`` and imports ketacds like any caller would.

Parts (one module each, so that other targets and mutators slot in):

``fuzz.seeds``
    The seed documents: every case of ``examples/*.yaml`` and every scenario of
    ``tests/scenarios/*.scenario.yaml``, in the ``ketacds assess`` input shape
    (titles and expectations removed). :func:`fuzz.seeds.case` derives case *i* of a
    run deterministically from the seeds, the run's seed and *i*, so any case can be
    rebuilt alone (``--show I``) without storing it.
``fuzz.mutators``
    Functions ``(document, random) -> None`` that change a copy of a seed in place:
    numbers (tiny, huge, negative, zero, many decimal places, exponent strings such
    as ``"1e-05"``, non-numbers), codes (unknown, other systems, empty), dropped
    fields, times (future, far past, microseconds, other offsets, no offset, garbage),
    wrong types and duplicated list items. :data:`fuzz.mutators.MUTATORS` lists them
    by name; each case applies one to three.
``fuzz.targets``
    What a case is run against. A target is a function ``(document) -> Outcome``;
    :data:`fuzz.targets.TARGETS` lists them by name. ``engine`` reads the document
    (``load_case``), assesses it with durable_rules and with the reference evaluator,
    and compares their firings (rule and facts) and status. A target runs in a worker
    process and must catch every exception itself, classifying it: a documented
    ``ketacds.errors`` exception (an ``InputError`` is a refusal, an
    ``EvaluationError`` a loud engine failure), or anything else (undocumented).
``fuzz.report``
    The counts (cases, assessed, refused with InputError, engine errors,
    disagreements, crashes, undocumented exceptions, hangs over 2 s), the first
    examples of each failure with the command that replays them, and the exit status:
    non-zero on any disagreement, crash or undocumented exception.
``fuzz.run``
    The process pool: each worker takes one case at a time over a pipe; a worker that
    dies (a segfault, an abort) counts a crash for its case and is replaced; a case
    that runs past the kill limit counts as a hang and its worker is replaced.

``fuzz.raw``, ``fuzz.service``
    The raw seeds and byte mutators of the loader, cli and service targets, and the
    loopback service they post to.

Extending it: add a target function to ``fuzz.targets.TARGETS`` (its case builder to
``fuzz.run.CASES`` if its input is not a document), then ``python -m fuzz --target NAME``.
"""
