"""The Milvus backend (Milvus Lite, embedded): a version is a collection, `current` an alias that
publish and rollback switch, and the read side answers from it exactly as from FAISS."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer import artifacts, milvus_backend
from indexer.errors import ArtifactError, ArtifactMismatch
from indexer.pipeline import index_survey
from indexer.settings import IndexSettings
from indexer.store import Filters, IndexedSurvey


@pytest.fixture(scope="module")
def stores(tiny_artifacts: Path) -> tuple[IndexedSurvey, IndexedSurvey]:
    return IndexedSurvey.open_current(tiny_artifacts), IndexedSurvey(tiny_artifacts / "current", backend="milvus")


def rows(hits: list) -> list[int]:
    return [h.row for h in hits]


def test_version_is_a_collection_with_every_object(tiny_artifacts: Path, milvus_uri: str) -> None:
    store = IndexedSurvey(tiny_artifacts / "current", backend="milvus")
    part = store.info.milvus
    assert part is not None and part.uri == milvus_backend.check_uri(milvus_uri)
    assert part.collection == milvus_backend.collection_name(store.version)
    assert store.searcher.ntotal == len(store) == part.n_objects
    assert part.alias == "skysift_tiny_current"
    assert milvus_backend.alias_target(milvus_uri, part.alias) == part.collection


def test_same_neighbours_as_faiss(stores: tuple[IndexedSurvey, IndexedSurvey]) -> None:
    faiss_store, milvus_store = stores
    for r in np.linspace(0, len(faiss_store) - 1, 8).astype(int):
        oid = str(faiss_store.catalog["object_id"][r])
        a, b = faiss_store.similar(oid, 10), milvus_store.similar(oid, 10)
        assert rows(a) == rows(b) and rows(b)[0] == r
        np.testing.assert_allclose([h.distance for h in a], [h.distance for h in b], atol=1e-5)


def test_filters_pushed_down_give_the_exact_answer(stores: tuple[IndexedSurvey, IndexedSurvey]) -> None:
    faiss_store, milvus_store = stores
    z = np.asarray(faiss_store.catalog["z"], dtype=float)
    lo, hi = np.quantile(z, [0.4, 0.55])
    ra, dec = faiss_store.catalog["ra"], faiss_store.catalog["dec"]
    mag = np.asarray(faiss_store.catalog["mag_r"], dtype=float)
    cases = [Filters(z_min=float(lo), z_max=float(hi)), Filters(mag_max=float(np.quantile(mag, 0.2))),
             Filters(ra_deg=float(np.median(ra)), dec_deg=float(np.median(dec)), radius_deg=1.5),
             Filters(z_min=float(lo), ra_deg=float(np.median(ra)), dec_deg=float(np.median(dec)), radius_deg=3.0)]
    for f in cases:
        mask = faiss_store.filter_mask(f)
        assert mask is not None and 10 <= mask.sum() < len(faiss_store)
        for r in (0, 77, 150):
            q = faiss_store.vector(r)
            a, b = faiss_store.search_vector(q, 10, f), milvus_store.search_vector(q, 10, f)
            assert len(b) == 10 and all(mask[h.row] for h in b)
            assert rows(a) == rows(b), f


def test_fewer_than_k_pass_gives_all_of_them(stores: tuple[IndexedSurvey, IndexedSurvey]) -> None:
    faiss_store, milvus_store = stores
    z = np.asarray(faiss_store.catalog["z"], dtype=float)
    f = Filters(z_min=float(np.sort(z[np.isfinite(z)])[-3]))  # the three highest redshifts
    hits = milvus_store.search_vector(milvus_store.vector(0), 10, f)
    assert sorted(rows(hits)) == sorted(np.nonzero(z >= f.z_min)[0].tolist())
    assert milvus_store.search_vector(milvus_store.vector(0), 5, Filters(z_min=99.0)) == []


def test_exclusions_still_give_k(stores: tuple[IndexedSurvey, IndexedSurvey]) -> None:
    _, milvus_store = stores
    first = rows(milvus_store.search_vector(milvus_store.vector(5), 20))
    hits = milvus_store.search_vector(milvus_store.vector(5), 10, exclude=set(first[:15]))
    assert rows(hits) == first[15:20] + rows(hits)[5:] and len(hits) == 10


def test_publish_and_rollback_switch_the_alias(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    uri = str(tmp_path / "own.db")  # its own database: the alias name is the same as the session's
    root = tmp_path / "artifacts"
    common = dict(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, device="cpu", shard_size=64,
                  recall_sample=50, map_method="pca", backend="milvus", milvus_uri=uri)
    v1 = index_survey(IndexSettings(job="a", **common))
    v2 = index_survey(IndexSettings(job="b", index_factory="HNSW16", milvus_index="HNSW", **common))
    assert v1 != v2
    assert milvus_backend.alias_target(uri, "skysift_current") == milvus_backend.collection_name(v2)
    assert artifacts.rollback(root) == v1
    assert milvus_backend.alias_target(uri, "skysift_current") == milvus_backend.collection_name(v1)
    artifacts.remove_version(root, v2)  # the version's collection goes with it
    client = milvus_backend.connect(uri)
    assert not client.has_collection(milvus_backend.collection_name(v2))
    assert client.has_collection(milvus_backend.collection_name(v1))


def test_faiss_only_version_is_refused_by_the_milvus_backend(tiny_survey: Path, tiny_encoder: Path,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    index_survey(IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="f", device="cpu",
                               shard_size=64, recall_sample=50, map_method="pca"))
    with pytest.raises(ArtifactMismatch, match="no Milvus collection.*--backend milvus"):
        IndexedSurvey(root / "current", backend="milvus")


def test_collection_that_lost_objects_is_refused(tiny_artifacts: Path, tmp_path: Path, milvus_uri: str) -> None:
    copy = tmp_path / "version"
    shutil.copytree((tiny_artifacts / "current").resolve(), copy)
    store = IndexedSurvey(copy, backend="milvus")
    milvus_backend.connect(milvus_uri).delete(store.info.milvus.collection, filter="row < 3")  # type: ignore[union-attr]
    try:
        with pytest.raises(ArtifactMismatch, match="holds 237 objects, the version 240"):
            IndexedSurvey(copy, backend="milvus")
    finally:  # put them back for the other tests sharing the session's collection
        vec = np.asarray(store.embeddings[:3], dtype=np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        base = {c: None for c in milvus_backend.SCALARS}
        data = [{**base, "row": i, "vec": vec[i], "healpix": int(store.catalog["healpix"][i]),
                 "z": float(store.catalog["z"][i]), "mag": float(store.catalog["mag_r"][i]),
                 "anomaly_score": float(store.anomaly[i])} for i in range(3)]
        milvus_backend.connect(milvus_uri).insert(store.info.milvus.collection, data)  # type: ignore[union-attr]


def test_bad_settings_and_uris_are_named() -> None:
    with pytest.raises(ValueError, match="--milvus-uri"):
        IndexSettings(backend="milvus")
    with pytest.raises(ArtifactError, match="neither a Milvus server URL.*--milvus-uri"):
        milvus_backend.check_uri("/tmp/not-a-lite-file")
    assert milvus_backend.check_uri("http://milvus:19530") == "http://milvus:19530"


def test_filter_expression_and_healpix_ranges() -> None:
    assert milvus_backend.healpix_ranges(np.array([3, 1, 2, 7]), 2) == [(4, 16), (28, 32)]
    expr = milvus_backend.filter_expression(z_min=0.1, mag_max=19.5, healpix=[(4, 16)])
    assert expr == "z >= 0.1 and mag <= 19.5 and ((healpix >= 4 and healpix < 16))"
    assert milvus_backend.filter_expression() == ""
    assert milvus_backend.filter_expression(healpix=[]) == "healpix < -1"
