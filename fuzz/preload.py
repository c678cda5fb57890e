"""Imported once by the fork server of ``fuzz.run``.

It reads the seed documents and imports ketacds there, so that every worker forked
from it starts with both in memory.
"""

from __future__ import annotations

import fuzz.mutators
import fuzz.targets
from fuzz.seeds import seeds

seeds()
__all__ = ["fuzz"]
