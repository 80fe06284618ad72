"""Votes on objects, kept durably in SQLite (one file that outlives index versions).

WAL journal + `synchronous=FULL`: a commit fsyncs the WAL before it returns, so a vote the API has
acknowledged survives the process being killed or the machine losing power. One short-lived
connection per call, so the store is safe to use from FastAPI's thread pool without a shared
connection; SQLite's own locking (busy timeout) serialises writers.

Each vote keeps what a later re-ranking step needs: the stable object ID, the label, who voted,
when (UTC), and the index version and encoder weights served at the time.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: the label "relevance" with its 0-5 score (Astronomaly's scale)
BUSY_TIMEOUT_S = 10.0

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id      TEXT NOT NULL,
    label          TEXT NOT NULL CHECK (label IN ('lens', 'not_lens', 'interesting', 'boring', 'relevance')),
    voter          TEXT NOT NULL,
    note           TEXT,
    created        TEXT NOT NULL,  -- ISO 8601, UTC
    version        TEXT NOT NULL,  -- index version served when the vote was cast
    weights_sha256 TEXT NOT NULL,  -- encoder weights of that version
    score          INTEGER CHECK ((label = 'relevance') = (score IS NOT NULL)
                                  AND (score IS NULL OR score BETWEEN 0 AND 5))
)"""
_INDEXES = ("CREATE INDEX IF NOT EXISTS votes_object ON votes (object_id)",
            "CREATE INDEX IF NOT EXISTS votes_label ON votes (label)")
_COLUMNS_V1 = "id, object_id, label, voter, note, created, version, weights_sha256"


@dataclass(frozen=True)
class Vote:
    id: int
    object_id: str
    label: str
    voter: str
    note: str | None
    created: str
    version: str
    weights_sha256: str
    score: int | None = None  # the 0-5 relevance of a "relevance" vote

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class VotesStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OSError(f"{self.path}: SQLite could not switch to WAL journaling (got {mode!r})")
            self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Create the table, or bring a version-1 file (no relevance votes) to version 2, in one
        transaction: SQLite cannot change a CHECK constraint in place, so the rows move to a new table.
        A crash before the commit leaves the file as it was; the next start migrates it again."""
        conn.isolation_level = None  # explicit transaction: DDL and the copy commit together or not at all
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'votes'").fetchone()
            if old is None:
                conn.execute(_TABLE.format(name="votes"))
            elif int(conn.execute("PRAGMA user_version").fetchone()[0]) < 2:
                conn.execute("DROP TABLE IF EXISTS votes_v2")
                conn.execute(_TABLE.format(name="votes_v2"))
                conn.execute(f"INSERT INTO votes_v2 ({_COLUMNS_V1}) SELECT {_COLUMNS_V1} FROM votes")
                conn.execute("DROP TABLE votes")
                conn.execute("ALTER TABLE votes_v2 RENAME TO votes")
            for statement in _INDEXES:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        conn.execute("PRAGMA synchronous=FULL")  # per connection; FULL = fsync the WAL at every commit
        return conn

    def add(self, object_id: str, label: str, voter: str, note: str | None, version: str,
            weights_sha256: str, score: int | None = None) -> Vote:
        """Record one vote (`score` 0-5 with the label "relevance", None otherwise); returns it once it
        is committed (and fsynced)."""
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        with closing(self._connect()) as conn:
            with conn:  # commits on success
                cur = conn.execute(
                    "INSERT INTO votes (object_id, label, voter, note, created, version, weights_sha256, score) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (object_id, label, voter, note, created, version, weights_sha256, score))
                vote_id = int(cur.lastrowid or 0)
        return Vote(vote_id, object_id, label, voter, note, created, version, weights_sha256, score)

    def delete(self, vote_id: int, voter: str) -> str:
        """Delete vote `vote_id` if `voter` cast it: 'deleted', 'missing' or 'other_voter' (then kept)."""
        with closing(self._connect()) as conn:
            with conn:
                row = conn.execute("SELECT voter FROM votes WHERE id = ?", (vote_id,)).fetchone()
                if row is None:
                    return "missing"
                if row[0] != voter:
                    return "other_voter"
                conn.execute("DELETE FROM votes WHERE id = ?", (vote_id,))
        return "deleted"

    def labelled(self, labels: tuple[str, ...], until_id: int | None = None
                 ) -> list[tuple[int, str, str, int | None]]:
        """(vote id, object_id, label, score) of every vote with one of `labels` and id <= until_id (None:
        all), oldest first: what a ranking learns from, fixed by the last vote id it saw."""
        marks = ",".join("?" * len(labels))
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT id, object_id, label, score FROM votes WHERE label IN ({marks}) AND id <= ? "
                                "ORDER BY id", [*labels, until_id if until_id is not None else 2**62]).fetchall()
        return [(int(i), str(o), str(lab), None if sc is None else int(sc)) for i, o, lab, sc in rows]

    def list(self, *, object_id: str | None = None, label: str | None = None, voter: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[int, list[Vote]]:
        """(number matching, one page of them oldest first) for the given filters (None = any)."""
        where, args = [], []
        for column, value in (("object_id", object_id), ("label", label), ("voter", voter)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with closing(self._connect()) as conn:
            total = int(conn.execute(f"SELECT COUNT(*) FROM votes{clause}", args).fetchone()[0])
            rows = conn.execute(
                "SELECT id, object_id, label, voter, note, created, version, weights_sha256, score "
                f"FROM votes{clause} ORDER BY id LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return total, [Vote(*r) for r in rows]
