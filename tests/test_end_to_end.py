"""Tiny simulated survey -> a few training steps -> index -> the app through a test client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0))) as c:
        yield c


def first_ids(client: TestClient, n: int) -> list[str]:
    from indexer.store import IndexedSurvey

    store = IndexedSurvey.open_current(client.app.state.settings.artifacts)
    return [str(x) for x in store.catalog["object_id"][:n]]


def test_similar_returns_the_query_first_at_zero_distance(client: TestClient) -> None:
    for oid in first_ids(client, 5):
        r = client.get(f"/api/v1/objects/{oid}/similar", params={"k": 7})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"version", "k", "query", "neighbours"}
        assert body["query"]["object_id"] == oid
        assert len(body["neighbours"]) == 7
        first = body["neighbours"][0]
        assert first["object_id"] == oid and first["rank"] == 0
        assert first["distance"] == pytest.approx(0.0, abs=2e-3)
        d = [n["distance"] for n in body["neighbours"]]
        assert d == sorted(d), "neighbours must come nearest first"
        assert all(0.0 <= x <= 2.0 for x in d)
        assert len({n["object_id"] for n in body["neighbours"]}) == 7
        for n in body["neighbours"]:
            assert {"object_id", "ra", "dec", "row", "distance", "rank", "anomaly_score"} <= set(n)


def test_unknown_id_is_404_naming_it(client: TestClient) -> None:
    r = client.get("/api/v1/objects/no-such-galaxy/similar")
    assert r.status_code == 404
    assert r.json() == {"error": "unknown_object", "detail": "no object with id 'no-such-galaxy' in this survey"}
    assert client.get("/api/v1/cutouts/no-such-galaxy.png").status_code == 404


def test_bad_k_is_a_422_with_json(client: TestClient) -> None:
    oid = first_ids(client, 1)[0]
    for k in ("0", "-3", "many", "100000"):
        r = client.get(f"/api/v1/objects/{oid}/similar", params={"k": k})
        assert r.status_code == 422, k
        assert r.json()["error"] == "invalid_parameter" and "k" in r.json()["detail"]


def test_cutout_png_is_a_colour_image(client: TestClient) -> None:
    from io import BytesIO

    from PIL import Image

    oid = first_ids(client, 1)[0]
    r = client.get(f"/api/v1/cutouts/{oid}.png", params={"size": 96})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(BytesIO(r.content)))
    assert img.shape == (96, 96, 3)
    assert img.max() > 50, "the galaxy should be visible, not a black square"


def test_page_html_and_script_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text and 'id="search-form"' in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/api/v1/objects/" in js.text
    assert client.get("/static/style.css").status_code == 200


def test_health_and_version(client: TestClient, tiny_artifacts: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    v = client.get("/api/v1/version").json()
    assert ready["version"] == v["version"] == (tiny_artifacts / "current").resolve().name
    assert v["n_objects"] == 240 and v["index"]["recall_at_10"] == pytest.approx(1.0)
