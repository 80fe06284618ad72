"""A new version is published while clients hammer a real server: no failed or mixed request.

The server is uvicorn on 127.0.0.1 in a thread; three client threads loop over /similar,
/rankings/lenses and /version with httpx. The second version is built from the same survey with
another index (HNSW32) and with known lenses, so its lens scores exist where the first version's
are NaN: a response labelled with one version but computed (even partly) from the other is caught.
"""

from __future__ import annotations

import csv
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from app.main import create_app
from app.settings import ServiceSettings
from indexer.artifacts import current_version, publish
from indexer.build import build_version
from indexer.pipeline import index_survey, job_dir
from indexer.settings import IndexSettings
from indexer.store import IndexedSurvey

TOKEN = "swap-token"


@dataclass
class Answer:
    client: int
    started: float
    path: str
    status: int
    body: Any


class Server:
    def __init__(self, settings: ServiceSettings) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


class Clients:
    """n threads, each sending requests back to back until stopped; every answer is recorded."""

    PATHS = ["/api/v1/objects/sim-0000042/similar?k=5", "/api/v1/rankings/lenses?limit=5", "/api/v1/version",
             "/api/v1/objects/sim-0000117/similar?k=5&format=json"]

    def __init__(self, url: str, n: int = 3) -> None:
        self.url, self.stop = url, threading.Event()
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            k = i
            while not self.stop.is_set():
                path = self.PATHS[k % len(self.PATHS)]
                k += 1
                started = time.monotonic()
                try:
                    r = http.get(path)
                    answer = Answer(i, started, path, r.status_code, r.json())
                except Exception as exc:  # recorded, the test fails on any
                    with self._lock:
                        self.errors.append(f"{path}: {exc!r}")
                    continue
                with self._lock:
                    self.answers.append(answer)

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def wait_for(self, condition, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if condition(list(self.answers)):
                    return
            assert time.monotonic() < deadline, "clients did not reach the expected state in time"
            time.sleep(0.05)


def version_of(a: Answer) -> str:
    return a.body["version"]


@pytest.fixture()
def root(tiny_artifacts: Path, tmp_path: Path) -> Path:
    # building/tiny holds the finished embedding shards: the second build re-uses them
    return Path(shutil.copytree(tiny_artifacts, tmp_path / "artifacts", symlinks=True))


def second_build(root: Path, tiny_survey: Path, tiny_encoder: Path, tmp_path: Path) -> IndexSettings:
    store = IndexedSurvey.open_current(root)
    lenses = tmp_path / "known_lenses.csv"
    with open(lenses, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object_id"])
        for oid in np.asarray(store.catalog["object_id"])[np.asarray(store.catalog["class"]) == "lens"][:6]:
            w.writerow([oid])
    return IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="tiny", device="cpu",
                         shard_size=64, recall_sample=100, index_factory="HNSW32", lens_labels=lenses)


def check_consistent(answers: list[Answer], v1: str, v2: str, expected_lenses: dict[str, list[str]]) -> None:
    """Each answer is 200, from exactly one of the two versions, and its content is that version's."""
    for a in answers:
        assert a.status == 200, (a.path, a.body)
        v = version_of(a)
        assert v in (v1, v2), v
        if "/rankings/lenses" in a.path:
            assert [i["object_id"] for i in a.body["items"]] == expected_lenses[v], "ranking from another version"
            assert (a.body["total"] == 0) == (v == v1), "only the second version has lens scores"
        if "/similar" in a.path:
            has_lens = [n["lens_score"] is not None for n in a.body["neighbours"]] + \
                       [a.body["query"]["lens_score"] is not None]
            assert all(has_lens) if v == v2 else not any(has_lens), "records from another version"
    for c in {a.client for a in answers}:  # per client: once the new version is seen, never the old one
        seq = [version_of(a) for a in sorted((a for a in answers if a.client == c), key=lambda a: a.started)]
        first_new = seq.index(v2)
        assert set(seq[first_new:]) == {v2}, f"client {c} went back to the old version"


def expected_lens_pages(root: Path, versions: list[str]) -> dict[str, list[str]]:
    from app.routes.rankings import ranking

    out = {}
    for v in versions:
        s = IndexedSurvey(root / "versions" / v)
        out[v] = [i.object_id for i in ranking(s, "lens", 5, 0).items]
    return out


def test_watcher_swap_while_building_under_load(root: Path, tiny_survey: Path, tiny_encoder: Path,
                                                tmp_path: Path) -> None:
    v1 = current_version(root)
    settings = ServiceSettings(artifacts=root, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0.2)
    with Server(settings) as server, Clients(server.url) as clients:
        clients.wait_for(lambda ans: len(ans) >= 60)
        v2 = index_survey(second_build(root, tiny_survey, tiny_encoder, tmp_path))  # build + publish under load
        assert v2 != v1 and current_version(root) == v2
        published = time.monotonic()
        # every client sees the new version, then keeps going for a while on it
        clients.wait_for(lambda ans: all(any(version_of(a) == v2 for a in ans if a.client == c) for c in range(3)))
        n_after = len(clients.answers)
        clients.wait_for(lambda ans: len(ans) >= n_after + 60)
    assert not clients.errors, clients.errors[:5]
    answers = clients.answers
    check_consistent(answers, v1, v2, expected_lens_pages(root, [v1, v2]))
    old = [a for a in answers if version_of(a) == v1]
    new = [a for a in answers if version_of(a) == v2]
    assert len(old) >= 60 and len(new) >= 60
    # the watcher polls every 0.2 s: no request started 2 s after publishing is answered by the old version
    assert all(a.started < published + 2.0 for a in old)
    assert [version_of(a) for a in sorted(answers, key=lambda a: a.started)[-30:]] == [v2] * 30


def test_admin_reload_under_load_serves_only_the_new_version_afterwards(root: Path, tiny_survey: Path,
                                                                        tiny_encoder: Path, tmp_path: Path) -> None:
    v1 = current_version(root)
    s = second_build(root, tiny_survey, tiny_encoder, tmp_path)
    stage = build_version(s, job_dir(s))  # built beforehand; published under load below
    settings = ServiceSettings(artifacts=root, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0,
                               admin_token=TOKEN)
    with Server(settings) as server, Clients(server.url) as clients:
        clients.wait_for(lambda ans: len(ans) >= 60)
        v2 = publish(root, stage)
        time.sleep(0.3)
        assert all(version_of(a) == v1 for a in clients.answers), "watcher off: only a reload swaps"
        r = httpx.post(f"{server.url}/api/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        reloaded = time.monotonic()
        assert r.status_code == 200 and r.json() == {"version": v2, "changed": True, "previous": v1}
        n_after = len(clients.answers)
        clients.wait_for(lambda ans: len(ans) >= n_after + 60)
    assert not clients.errors, clients.errors[:5]
    check_consistent(clients.answers, v1, v2, expected_lens_pages(root, [v1, v2]))
    after = [a for a in clients.answers if a.started > reloaded]
    assert len(after) >= 50 and {version_of(a) for a in after} == {v2}, "a request started after the reload got v1"
