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

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id      TEXT NOT NULL,
    label          TEXT NOT NULL CHECK (label IN ('lens', 'not_lens', 'interesting', 'boring')),
    voter          TEXT NOT NULL,
    note           TEXT,
    created        TEXT NOT NULL,  -- ISO 8601, UTC
    version        TEXT NOT NULL,  -- index version served when the vote was cast
    weights_sha256 TEXT NOT NULL   -- encoder weights of that version
);
CREATE INDEX IF NOT EXISTS votes_object ON votes (object_id);
CREATE INDEX IF NOT EXISTS votes_label ON votes (label);
"""


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
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        conn.execute("PRAGMA synchronous=FULL")  # per connection; FULL = fsync the WAL at every commit
        return conn

    def add(self, object_id: str, label: str, voter: str, note: str | None, version: str,
            weights_sha256: str) -> Vote:
        """Record one vote; returns it once it is committed (and fsynced)."""
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        with closing(self._connect()) as conn:
            with conn:  # commits on success
                cur = conn.execute(
                    "INSERT INTO votes (object_id, label, voter, note, created, version, weights_sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (object_id, label, voter, note, created, version, weights_sha256))
                vote_id = int(cur.lastrowid or 0)
        return Vote(vote_id, object_id, label, voter, note, created, version, weights_sha256)

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

    def labelled(self, labels: tuple[str, ...], until_id: int | None = None) -> list[tuple[int, str, str]]:
        """(vote id, object_id, label) of every vote with one of `labels` and id <= until_id (None: all),
        oldest first: what a ranking learns from, fixed by the last vote id it saw."""
        marks = ",".join("?" * len(labels))
        with closing(self._connect()) as conn:
            rows = conn.execute(f"SELECT id, object_id, label FROM votes WHERE label IN ({marks}) AND id <= ? "
                                "ORDER BY id", [*labels, until_id if until_id is not None else 2**62]).fetchall()
        return [(int(i), str(o), str(lab)) for i, o, lab in rows]

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
                "SELECT id, object_id, label, voter, note, created, version, weights_sha256 "
                f"FROM votes{clause} ORDER BY id LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return total, [Vote(*r) for r in rows]
