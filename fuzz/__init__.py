"""The ketacds fuzz harness: mutated patient documents against the engine.

Each case runs in a worker process, so a crash is counted and never fatal to the run.

Run it with ``make fuzz`` (``N`` cases, default 20,000) or::

    .venv/bin/python -m fuzz --cases 20000 --workers 2 --seed 1

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

Extending it (other readers, the CLI, the CDS Hooks service): add a target function
to ``fuzz.targets.TARGETS`` (and mutators for its input shape if it needs them), then
``python -m fuzz --target NAME``.
"""
