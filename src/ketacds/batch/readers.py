"""Moved to :mod:`ketacds.cases`; the names stay importable from here."""

from ketacds.cases import *  # noqa: F403
from ketacds.cases import __all__ as __all__
from ketacds.cases import metadata as metadata  # tests patch the entry points here
