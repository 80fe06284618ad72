"""The map routes: meta, the packed points, one point's record, the PCA fallback and the ETag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes import map as map_routes
from app.settings import ServiceSettings
from indexer.store import IndexedSurvey


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0))) as c:
        yield c


def served(client: TestClient) -> IndexedSurvey:
    return client.app.state.holder.get()


def unpack(body: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    assert len(body) == 9 * n
    return np.frombuffer(body[: 8 * n], "<f4").reshape(n, 2), np.frombuffer(body[8 * n :], np.uint8)


def test_points_are_the_versions_map_in_row_order(client: TestClient) -> None:
    store = served(client)
    meta = client.get("/api/v1/map").json()
    assert meta["n"] == len(store) == 240 and meta["version"] == store.version
    assert meta["source"] == "artifact" and meta["method"] == store.map_method
    r = client.get(meta["points_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["content-length"]) == meta["bytes"] == 9 * meta["n"]
    xy, codes = unpack(r.content, meta["n"])
    np.testing.assert_array_equal(xy, np.asarray(store.map_xy, np.float32))
    x0, y0, x1, y1 = meta["bounds"]
    assert x0 == pytest.approx(xy[:, 0].min()) and y1 == pytest.approx(xy[:, 1].max())


def test_colour_index_names_the_class_column(client: TestClient) -> None:
    store = served(client)
    meta = client.get("/api/v1/map").json()
    assert meta["colour_by"] == "class"
    _, codes = unpack(client.get("/api/v1/map/points.bin").content, meta["n"])
    names = np.array(meta["classes"])[codes]
    np.testing.assert_array_equal(names, np.asarray(store.catalog["class"]).astype(str))
    counts = [int((codes == i).sum()) for i in range(len(meta["classes"]))]
    assert counts == sorted(counts, reverse=True), "most frequent class first"


def test_point_record_matches_the_catalog_row(client: TestClient) -> None:
    store = served(client)
    for row in (0, 17, 239):
        body = client.get(f"/api/v1/map/points/{row}").json()
        assert body["row"] == row and body["object_id"] == str(store.catalog["object_id"][row])
        assert (body["x"], body["y"]) == pytest.approx(tuple(store.map_xy[row].tolist()))
    r = client.get("/api/v1/map/points/240")
    assert r.status_code == 404 and r.json()["error"] == "unknown_point" and "240 points" in r.json()["detail"]
    assert client.get("/api/v1/map/points/-1").json()["error"] == "invalid_parameter"


def test_etag_revalidation_answers_304(client: TestClient) -> None:
    first = client.get("/api/v1/map/points.bin")
    etag = first.headers["etag"]
    assert served(client).version in etag and first.headers["cache-control"] == "no-cache"
    again = client.get("/api/v1/map/points.bin", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/api/v1/map/points.bin", headers={"If-None-Match": '"other"'}).status_code == 200


def test_version_without_a_map_gets_a_pca_of_its_embeddings(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = served(client)
    monkeypatch.setattr(type(store), "map_xy", property(lambda self: None))
    payload = map_routes._payload_for(store)
    assert payload.source == "service" and payload.method == "pca" and payload.n == len(store)
    assert np.isfinite(payload.xy).all() and payload.xy.std(axis=0).min() > 0


def test_colour_codes_keep_the_most_frequent_classes() -> None:
    values = np.array(["a"] * 5 + ["b"] * 3 + [f"rare{i}" for i in range(20)], dtype=object)
    codes, classes = map_routes.colour_codes(values, max_classes=4)
    assert classes == ["a", "b", "rare0", "other"]
    assert codes[:5].tolist() == [0] * 5 and codes[5:8].tolist() == [1] * 3 and codes[-1] == 3
    assert map_routes.colour_codes(np.zeros(3), 4) == (None, [])  # a numeric column is no colour key


def test_build_payload_packs_a_million_points_compactly() -> None:
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(1_000_000, 2)).astype(np.float32)
    xy[3] = np.nan  # a point the projection could not place: kept, but left out of the bounds
    p = map_routes.build_payload("v", xy, "umap", "artifact")
    assert len(p.body) == 9_000_000 and p.colour_by is None and p.body[-1] == map_routes.NO_CLASS
    assert all(np.isfinite(p.bounds)) and p.bounds[0] == pytest.approx(np.nanmin(xy[:, 0]))
