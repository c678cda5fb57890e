"""Durable service state in one SQLite file: issued cards, feedback, and seen token ids.

Every worker process opens the same file (WAL mode, so readers never block the
writer); a token id is recorded with an ``INSERT`` on its primary key, so a replay
is refused whichever worker it reaches. A :class:`Store` belongs to the thread that
opened it: the service makes all store calls on its worker's event loop thread.

Durability (``synchronous=NORMAL``, the setting SQLite recommends with WAL): a commit
is in the log when the statement returns, so it survives the worker process crashing
or being killed; the log is synced to disk at checkpoints, so a power loss or an
operating-system crash can lose the last commits (cards recorded, token ids seen)
but never corrupts the file. ``FULL`` would sync every commit (two per hook call).
A hook call commits its token id when it is checked, before any work, and its cards
in one transaction when they are issued (not both at the end: that would hold
SQLite's one write lock across the assessment, and the other workers' token checks
would wait for it).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["IssuedCard", "Store", "database_problem"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_ids (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    exp INTEGER NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE TABLE IF NOT EXISTS cards (
    uuid TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    hook TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    indicator TEXT NOT NULL,
    ruleset TEXT NOT NULL,
    digest TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    card TEXT NOT NULL,
    outcome TEXT NOT NULL,
    accepted_suggestions TEXT NOT NULL,
    reason_system TEXT,
    reason_code TEXT,
    reason_display TEXT,
    user_comment TEXT,
    outcome_timestamp TEXT NOT NULL,
    received_at TEXT NOT NULL,
    client TEXT
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback (card);
CREATE INDEX IF NOT EXISTS feedback_received ON feedback (received_at);
"""

#: A card as recorded when issued: (uuid, service, hook, hookInstance, rule ids, indicator, ruleset, digest).
IssuedCard = tuple[str, str, str, str, Sequence[str], str, str, str]


_SQLITE_HEADER = b"SQLite format 3\x00"
_TABLES = {"token_ids", "cards", "feedback"}


def database_problem(path: Path | str) -> str | None:
    """Why ``path`` is not a database the service wrote, or ``None``; reads, never writes.

    For readers of an existing database (``ketacds feedback``), which must neither
    fail with a traceback on some other file nor quietly turn it into a database.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        return f"cannot read: {error.strerror}"
    if not header:
        return "an empty file, not a ketacds database"
    if header != _SQLITE_HEADER:
        return "not a SQLite database"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error as error:
        return f"not a readable SQLite database ({error})"
    missing = sorted(_TABLES - names)
    return f"not a ketacds database (no table {missing[0]})" if missing else None


class Store:
    """The service's SQLite file.

    Args:
        path: the database file (created with its tables if missing).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._inserted = 0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def remember_token(self, iss: str, jti: str, exp: int, now: dt.datetime) -> bool:
        """Record a token id; ``False`` if this issuer already used it (a replay)."""
        try:
            self._db.execute("INSERT INTO token_ids (iss, jti, exp) VALUES (?, ?, ?)", (iss, jti, exp))
        except sqlite3.IntegrityError:
            return False
        self._inserted += 1
        if self._inserted % 500 == 0:  # forget ids whose tokens expired more than a day ago
            self._db.execute("DELETE FROM token_ids WHERE exp < ?", (int(now.timestamp()) - 86400,))
        return True

    def record_cards(self, cards: Iterable[IssuedCard], now: dt.datetime) -> None:
        """Record the cards of one response (to join feedback to rules later)."""
        issued_at = now.isoformat()
        rows = [
            (uuid, service, hook, instance, _rule_ids_json(tuple(ids)), indicator, ruleset, digest, issued_at)
            for uuid, service, hook, instance, ids, indicator, ruleset, digest in cards
        ]
        if rows:  # one transaction for all of them (one write to the log, not one per card)
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record_feedback(
        self, service: str, items: Sequence[Mapping[str, Any]], client: str | None, now: dt.datetime
    ) -> int:
        """Record feedback items (as validated by the service); return how many."""
        rows = []
        for item in items:
            reason = item.get("overrideReason") or {}
            coding = reason.get("reason") or {}
            accepted = [s.get("id") for s in item.get("acceptedSuggestions") or []]
            rows.append(
                (
                    service,
                    item["card"],
                    item["outcome"],
                    json.dumps(accepted),
                    coding.get("system"),
                    coding.get("code"),
                    coding.get("display"),
                    reason.get("userComment"),
                    item["outcomeTimestamp"],
                    now.isoformat(),
                    client,
                )
            )
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO feedback (service, card, outcome, accepted_suggestions, reason_system, "
                "reason_code, reason_display, user_comment, outcome_timestamp, received_at, client) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return len(rows)

    def query_feedback(
        self,
        *,
        service: str | None = None,
        card: str | None = None,
        outcome: str | None = None,
        rule_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Feedback, newest first, each with the rules and hook of the card it answers."""
        where, args = [], []
        for column, value in (("f.service", service), ("f.card", card), ("f.outcome", outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("f.received_at >= ?")
            args.append(since)
        if rule_id is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(c.rule_ids) WHERE json_each.value = ?)")
            args.append(rule_id)
        sql = (
            "SELECT f.*, c.rule_ids, c.hook, c.hook_instance, c.indicator, c.ruleset, c.digest "
            "FROM feedback f LEFT JOIN cards c ON c.uuid = f.card"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY f.id DESC LIMIT ?"
        )
        rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_feedback_row(row) for row in rows]


@functools.lru_cache(maxsize=1024)
def _rule_ids_json(rule_ids: tuple[str, ...]) -> str:
    """A card's rule ids as stored (a JSON list); the same few lists recur, so each is written once."""
    return json.dumps(list(rule_ids))


def _feedback_row(row: sqlite3.Row) -> dict[str, Any]:
    reason = None
    if row["reason_code"] or row["user_comment"]:
        reason = {
            "reason": {
                "system": row["reason_system"],
                "code": row["reason_code"],
                "display": row["reason_display"],
            }
            if row["reason_code"]
            else None,
            "userComment": row["user_comment"],
        }
    return {
        "id": row["id"],
        "service": row["service"],
        "card": row["card"],
        "outcome": row["outcome"],
        "acceptedSuggestions": [{"id": s} for s in json.loads(row["accepted_suggestions"])],
        "overrideReason": reason,
        "outcomeTimestamp": row["outcome_timestamp"],
        "receivedAt": row["received_at"],
        "client": row["client"],
        "rule_ids": json.loads(row["rule_ids"]) if row["rule_ids"] else None,
        "hook": row["hook"],
        "hookInstance": row["hook_instance"],
        "indicator": row["indicator"],
        "ruleset": row["ruleset"],
        "digest": row["digest"],
    }
