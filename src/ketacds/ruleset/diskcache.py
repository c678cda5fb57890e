"""Loaded rulesets kept on disk, so that a new process does not parse the YAML again.

Parsing and checking the bundled rulesets takes about 3 s (ruamel.yaml in pure Python,
with line numbers); every ``ketacds`` command, batch worker and service worker paid it
at start. A ruleset that loaded without a problem is written here as JSON (its full
intermediate form, source locations included) and read back in about 0.2 s the next
time the same files are loaded by the same ketacds.

What makes an entry the right one, and nothing else:

* its **name** is the SHA-256 of the bytes of every YAML file of the ruleset directory
  (by relative path), of every file of the ketacds package that reads or defines the
  rules (``*.py`` and the JSON Schemas: a changed loader is a new name), and of the
  Python version; a changed byte anywhere is another entry;
* the entry holds that name and the ruleset's **digest**; when read back, the name must
  match and the digest is computed again from what was read: if it differs, or the file
  cannot be read, decoded or rebuilt, the entry is ignored and the YAML is parsed, as if
  there were no entry. An entry never changes an answer: at worst it is not used.

Where: ``$KETACDS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ketacds``, else ``~/.cache/ketacds``
(subdirectory ``rulesets``). ``KETACDS_CACHE_DIR=off`` turns it off. Writing is atomic
(a temporary file renamed), and a directory that cannot be written is no error: the
ruleset is simply parsed next time too. At most :data:`KEPT` entries are kept (the
least recently used are removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ketacds.jsoncodec import Codec
from ketacds.ruleset.ir import All, AnyOf, Not, Pattern, Ref, RuleSet

__all__ = ["KEPT", "cache_dir", "entry_name", "read", "write"]

#: Entries kept in the directory; older ones are removed when a new one is written.
KEPT = 16
_FORMAT = "ketacds-ruleset-cache/1"
_OFF = "off"

#: The ruleset's whole intermediate form, source locations included (the canonical form
#: leaves them out): the IR codec's options with every attribute written.
_CODEC = Codec(decimals="tagged", sequences=list, sort_keys=False, tags=(Pattern, All, AnyOf, Not, Ref))

_PACKAGE = Path(__file__).resolve().parent.parent  # the ketacds package
_code_key: str | None = None


def cache_dir() -> Path | None:
    """The directory entries live in, or ``None`` when the cache is off."""
    chosen = os.environ.get("KETACDS_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in (_OFF, "") else Path(chosen) / "rulesets"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ketacds" / "rulesets"


def _files_digest(digest: Any, root: Path, files: Iterable[Path]) -> None:
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")


def _code() -> str:
    """A digest of the ketacds code and schemas that load rules (once per process)."""
    global _code_key
    if _code_key is None:
        digest = hashlib.sha256(sys.version.encode() + b"\0")
        files = sorted(p for p in _PACKAGE.rglob("*") if p.suffix in (".py", ".json") and p.is_file())
        _files_digest(digest, _PACKAGE, files)
        _code_key = digest.hexdigest()
    return _code_key


def entry_name(content_key: str) -> str:
    """The entry's name for a ruleset directory whose YAML files digest to ``content_key``."""
    return hashlib.sha256(f"{_FORMAT}\0{_code()}\0{content_key}".encode()).hexdigest()


def read(content_key: str) -> RuleSet | None:
    """The ruleset stored for ``content_key``, checked; ``None`` when there is none to trust."""
    where = cache_dir()
    if where is None or not content_key:
        return None
    name = entry_name(content_key)
    try:
        stored = json.loads((where / f"{name}.json").read_text(encoding="utf-8"))
        if stored.get("format") != _FORMAT or stored.get("name") != name:
            return None
        ruleset: RuleSet = _CODEC.decode(RuleSet, stored["ruleset"])
    except Exception:  # no entry, or one that cannot be read: parse the YAML
        return None
    if not isinstance(ruleset, RuleSet) or ruleset.digest != stored.get("digest"):
        return None
    with contextlib.suppress(OSError):  # used now: the last entry to be removed (see _prune)
        os.utime(where / f"{name}.json")
    return ruleset


def write(content_key: str, ruleset: RuleSet) -> None:
    """Store ``ruleset`` (loaded from files digesting to ``content_key``); never raises."""
    where = cache_dir()
    if where is None or not content_key:
        return
    name = entry_name(content_key)
    entry = {"format": _FORMAT, "name": name, "digest": ruleset.digest, "ruleset": _CODEC.encode(ruleset)}
    with contextlib.suppress(OSError):
        where.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=where)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entry, out, separators=(",", ":"), ensure_ascii=False)
            os.replace(temporary, where / f"{name}.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        _prune(where)


def _prune(where: Path) -> None:
    """Remove all but the :data:`KEPT` most recently written or read entries."""
    entries = []
    for path in where.glob("*.json"):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime_ns, path.name, path))
    for _, _, path in sorted(entries, reverse=True)[KEPT:]:
        with contextlib.suppress(OSError):
            path.unlink()
