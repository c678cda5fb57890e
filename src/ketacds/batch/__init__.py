"""Population runs: assess many patients, resumably, on local processes or a Dask cluster.

>>> from ketacds.batch import BatchOptions, reader_for, run_batch     # doctest: +SKIP
>>> source = Path("population.ndjson")                                 # doctest: +SKIP
>>> options = BatchOptions(                                            # doctest: +SKIP
...     input=source, out=Path("results"), reader=reader_for(source), workers=2
... )
>>> run_batch(options).summary.statuses                                # doctest: +SKIP

See ``ketacds batch --help``, :mod:`ketacds.batch.readers` (input formats and how to
add one), :mod:`ketacds.batch.store` (the output directory and resume) and
:mod:`ketacds.batch.runner` (workers, Dask, crashes, Ctrl-C).

.. versionadded:: 0.1.0
"""

from ketacds.batch.readers import (
    CaseFilesReader,
    Item,
    NdjsonReader,
    Reader,
    known_readers,
    reader_for,
    register_reader,
)
from ketacds.batch.runner import (
    BatchError,
    BatchOptions,
    BatchResult,
    Interrupted,
    Progress,
    default_workers,
    run_batch,
)
from ketacds.batch.summary import Summary, Tally

__all__ = [
    "BatchError",
    "BatchOptions",
    "BatchResult",
    "CaseFilesReader",
    "Interrupted",
    "Item",
    "NdjsonReader",
    "Progress",
    "Reader",
    "Summary",
    "Tally",
    "default_workers",
    "known_readers",
    "reader_for",
    "register_reader",
    "run_batch",
]
