"""Shared fixtures: a tiny simulated survey, an encoder trained for a few steps, a published
version. Built once per session (about 15 s on two cores) and shared read-only by tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_SEED = 7
TINY_ALIAS = "skysift_tiny_current"  # its own alias: versions other tests build in the same Milvus move theirs

# The files that cost the most (seconds of test time on the 2-core CPU machine, 2026-12-07, from
# `pytest --junitxml`), run first. `make test` hands whole files to two xdist workers in this order
# (--no-loadscope-reorder: xdist would otherwise order files by their number of tests, which puts
# the few long subprocess tests, crash safety, torchrun, MMU/HATS, last, where one worker runs them
# alone while the other has finished). Longest first, the two workers end within a few seconds.
HEAVY_FIRST = (
    "tests/app/test_schemathesis.py",  # 280 s
    "tests/test_bench_smoke.py",  # 177 s
    "tests/app/test_browser.py",  # 146 s
    "tests/indexer/test_encode_ranks.py",  # 72 s
    "tests/indexer/test_crash_safety.py",  # 49 s
    "tests/app/test_votes.py",  # 43 s
    "tests/survey/test_mmu_hats.py",  # 42 s
    "tests/app/test_operations.py",  # 38 s
    "tests/training/test_dist.py",  # 38 s
    "tests/survey/test_simulate.py",  # 36 s
    "tests/app/test_uploads.py",  # 35 s
    "tests/evaluation/test_evaluate.py",  # 32 s
    "tests/training/test_resume.py",  # 28 s
)


@pytest.hookimpl(trylast=True)  # after pytest groups each module's items by their parametrized fixtures
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """HEAVY_FIRST's files first, in its order, then the rest as collected; each file's own order kept."""
    root = Path(__file__).resolve().parents[1]
    if missing := [p for p in HEAVY_FIRST if not (root / p).is_file()]:
        raise pytest.UsageError(f"tests/conftest.py HEAVY_FIRST names files that are gone: {missing}")
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def tiny_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate

    out = tmp_path_factory.mktemp("tiny") / "survey"
    # Enough lenses and artifacts that every kind shows up in a 240-object survey.
    simulate(SimSettings(out_dir=out, preset="tiny", seed=TINY_SEED, shard_size=100, lens_fraction=0.05,
                         artifact_fraction=0.05, workers=2))
    return out


@pytest.fixture(scope="session")
def tiny_encoder(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    run = tmp_path_factory.mktemp("run")
    s = TrainSettings(survey=tiny_survey, out_dir=run, epochs=1, max_steps=4, batch_size=32, queue_size=128,
                      backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
                      augment=AugmentSettings(crop_size_px=32), workers=0, monitor_size=64, device="cpu",
                      produced_by="tests/conftest.py tiny_encoder")
    return train(s)


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Milvus Lite server (`milvus-lite server`, a process of its own speaking Milvus's
    gRPC protocol) for the session: what `--milvus-uri` names in tests, as Milvus Standalone's URL
    would in a deployment, so that tests with several processes (serve --workers 2, a killed
    server) reach the same collections. A Lite `.db` file admits one process only."""
    data = tmp_path_factory.mktemp("milvus") / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(data.parent / "server.log", "wb")  # noqa: SIM115  # closed after the server stops
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert proc.poll() is None, (data.parent / "server.log").read_text()
            assert time.monotonic() < deadline, "milvus-lite server did not start in 60 s"
            time.sleep(0.2)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def published_tiny(tiny_survey: Path, tiny_encoder: Path, milvus_uri: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny survey's published version, built with `--backend milvus`: it carries its FAISS
    index and names its Milvus collection, so every read-side test can run on either engine."""
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings

    root = tmp_path_factory.mktemp("artifacts")
    index_survey(IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="tiny", device="cpu",
                               shard_size=64, recall_sample=100, map_method="pca", backend="milvus",
                               milvus_uri=milvus_uri, milvus_alias=TINY_ALIAS))
    return root


@pytest.fixture(scope="session")
def tiny_artifacts(published_tiny: Path) -> Path:
    """The tiny published version (tests/app/conftest.py serves it on each engine in turn)."""
    return published_tiny
