"""GET /rankings/anomalies and /rankings/lenses: sorted, paginated, NaN scores left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.rankings import ranking
from app.settings import ServiceSettings
from indexer.store import IndexedSurvey


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0))) as c:
        yield c


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def test_anomalies_come_highest_score_first_with_ranks_and_total(client: TestClient, store: IndexedSurvey) -> None:
    r = client.get("/api/v1/rankings/anomalies", params={"limit": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == store.version and body["ranking"] == "anomaly"
    assert body["total"] == len(store) and body["limit"] == 20 and body["offset"] == 0 and body["note"] is None
    items = body["items"]
    assert [i["rank"] for i in items] == list(range(1, 21))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(np.max(store.anomaly)))
    for i in items:  # each row is the catalog record + its score
        rec = store.record(store.row_of(i["object_id"]))
        assert i["score"] == pytest.approx(rec["anomaly_score"]) == pytest.approx(i["anomaly_score"])
        assert i["ra"] == rec["ra"] and i["z"] == rec["z"] and i["class"] == rec["class"]
        assert "healpix" not in i


def test_pages_tile_the_ranking_without_gaps_or_repeats(client: TestClient, store: IndexedSurvey) -> None:
    whole = client.get("/api/v1/rankings/anomalies", params={"limit": 1000}).json()["items"]
    assert len(whole) == len(store)
    paged = []
    for offset in range(0, len(store), 70):
        page = client.get("/api/v1/rankings/anomalies", params={"limit": 70, "offset": offset}).json()
        assert page["total"] == len(store)
        paged += page["items"]
    assert [i["object_id"] for i in paged] == [i["object_id"] for i in whole]
    assert len({i["object_id"] for i in whole}) == len(store)
    assert [i["rank"] for i in paged] == list(range(1, len(store) + 1))


def test_offset_past_the_end_is_an_empty_page_with_a_note(client: TestClient, store: IndexedSurvey) -> None:
    body = client.get("/api/v1/rankings/anomalies", params={"offset": 10_000}).json()
    assert body["items"] == [] and body["total"] == len(store) and "past the end" in body["note"]


@pytest.mark.parametrize(("params", "word"), [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                                              ({"offset": -1}, "offset"), ({"limit": "ten"}, "limit")])
def test_bad_paging_is_a_422_naming_the_parameter(client: TestClient, params: dict, word: str) -> None:
    for path in ("/api/v1/rankings/anomalies", "/api/v1/rankings/lenses"):
        r = client.get(path, params=params)
        assert r.status_code == 422
        assert r.json()["error"] == "invalid_parameter" and word in r.json()["detail"]


def test_lenses_without_scores_is_an_empty_list_with_a_note(client: TestClient, store: IndexedSurvey) -> None:
    assert np.isnan(store.lens).all(), "the tiny version is built without known lenses"
    r = client.get("/api/v1/rankings/lenses")
    assert r.status_code == 200
    body = r.json()
    assert body["items"] == [] and body["total"] == 0 and body["ranking"] == "lens"
    assert "no lens scores" in body["note"] and "lens_labels" in body["note"]
    csv_text = client.get("/api/v1/rankings/lenses", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("object_id,ra,dec"), "an empty page still has its header"


def test_lens_ranking_leaves_out_nan_scores(tiny_artifacts: Path) -> None:
    # A private copy of the store with a few lens scores (the rest NaN), as a version built from
    # a handful of known lenses could have.
    store = IndexedSurvey.open_current(tiny_artifacts)
    lens = np.full(len(store), np.nan, dtype=np.float32)
    scored = {5: 0.2, 17: 0.9, 99: 0.55, 200: 0.9, 3: 0.01}
    for row, s in scored.items():
        lens[row] = s
    store.lens = lens
    body = ranking(store, "lens", limit=3, offset=0)
    assert body.total == len(scored)
    assert [i.row for i in body.items] == [17, 200, 99], "score desc, ties by row"
    assert [i.rank for i in body.items] == [1, 2, 3]
    assert body.items[0].lens_score == pytest.approx(0.9) == body.items[0].score
    rest = ranking(store, "lens", limit=10, offset=3)
    assert [i.row for i in rest.items] == [5, 3] and rest.note is None


@pytest.fixture(scope="module")
def lens_artifacts(tiny_survey: Path, tiny_encoder: Path, backend: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version built with six of the tiny survey's lenses as known lenses (the lens score's seeds)."""
    import csv

    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from survey.native import NativeSurvey

    root = tmp_path_factory.mktemp("lens_artifacts")
    cat = NativeSurvey(tiny_survey).catalog
    seeds = np.asarray(cat["object_id"])[np.asarray(cat["class"]) == "lens"][:6]
    assert len(seeds) == 6
    with open(root / "known_lenses.csv", "w", newline="") as f:
        csv.writer(f).writerows([["object_id"], *[[s] for s in seeds]])
    index_survey(IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="lens", device="cpu",
                               shard_size=64, recall_sample=100, map_method="pca",
                               lens_labels=root / "known_lenses.csv"))
    return root


def test_known_lenses_are_flagged_and_left_out_of_the_candidates(lens_artifacts: Path) -> None:
    seeds = {r[0] for r in (lens_artifacts / "known_lenses.csv").read_text().split()[1:] for r in [r.split(",")]}
    store = IndexedSurvey.open_current(lens_artifacts)
    assert {str(o) for o in np.asarray(store.catalog["object_id"])[store.known_lens]} == seeds
    with TestClient(create_app(ServiceSettings(artifacts=lens_artifacts, watch_interval_s=0))) as c:
        new = c.get("/api/v1/rankings/lenses", params={"limit": 500}).json()
        every = c.get("/api/v1/rankings/lenses", params={"limit": 500, "include_known": "true"}).json()
        anomalies = c.get("/api/v1/rankings/anomalies", params={"limit": 500}).json()
        csv_text = c.get("/api/v1/rankings/lenses", params={"include_known": "true", "format": "csv"}).text
    assert new["known_left_out"] == 6 and every["known_left_out"] == 0
    assert new["total"] == every["total"] - 6
    assert not {i["object_id"] for i in new["items"]} & seeds and not any(i["known_lens"] for i in new["items"])
    flagged = {i["object_id"] for i in every["items"] if i["known_lens"]}
    assert flagged == seeds
    assert [i["rank"] for i in new["items"][:3]] == [1, 2, 3]
    assert {i["object_id"] for i in anomalies["items"] if i["known_lens"]} <= seeds
    assert "known_lens" in csv_text.splitlines()[0].split(",")


def test_versions_without_the_known_lens_column_flag_nothing(store: IndexedSurvey) -> None:
    assert store.known_lens.dtype == bool and len(store.known_lens) == len(store)


def test_artifact_ranking_puts_the_injected_artifacts_first(client: TestClient, store: IndexedSurvey) -> None:
    body = client.get("/api/v1/rankings/artifacts", params={"limit": 100}).json()
    assert body["ranking"] == "artifact" and body["total"] == len(store)
    assert "data quality from the pixels" in body["description"]
    kinds = np.asarray(store.catalog["artifact_kind"]).astype(str)
    n_art = int((kinds != "").sum())
    assert n_art >= 1  # the tiny survey has a few
    top = [i["artifact_kind"] != "" for i in body["items"][:n_art]]
    # the cosmic rays, columns and bleeds first; faint trails and ghosts compete with bright edge-on galaxies
    assert all(top[:6]) and sum(top) >= 2 * n_art / 3, [(i["artifact_kind"], i["quality_flag"], i["score"])
                                                        for i in body["items"][:n_art]]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for i in body["items"]:
        assert i["score"] == pytest.approx(i["quality_score"])
        assert i["quality_flag"] in {"sharp", "flat", "plateau", "streak", "haze"}


def test_combined_ranking_is_the_larger_robust_z_of_both_scores(client: TestClient, store: IndexedSurvey) -> None:
    from indexer.quality import robust_z

    expect = np.maximum(robust_z(store.anomaly), store.quality)
    np.testing.assert_allclose(store.combined, expect, rtol=1e-5)
    body = client.get("/api/v1/rankings/combined", params={"limit": 5, "format": "csv"})
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/csv")
    rows = body.text.strip().splitlines()
    assert len(rows) == 6 and "quality_score" in rows[0]


def test_votes_retrain_the_lens_ranking_and_a_learned_ranking_is_reproducible(lens_artifacts: Path,
                                                                               tmp_path: Path) -> None:
    settings = ServiceSettings(artifacts=lens_artifacts, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0)
    with TestClient(create_app(settings)) as c:
        def lenses(**params):
            r = c.get("/api/v1/rankings/lenses", params={"limit": 500, **params})
            assert r.status_code == 200, r.text
            return r.json()

        built = lenses()
        assert built["learned_from_votes"] is None and built["ranking_version"] == built["version"]
        none = lenses(learn="true")
        assert none["learned_from_votes"] == 0 and none["until_vote"] == 0
        assert none["ranking_version"] == f"{built['version']}:votes<=0"

        ids = [i["object_id"] for i in none["items"]]
        top, riser = ids[0], ids[len(ids) // 2]
        for oid, label in ((top, "not_lens"), (riser, "lens")):
            assert c.post("/api/v1/votes", json={"object_id": oid, "label": label, "voter": "ada"}).status_code == 201
        learned = lenses(learn="true")
        assert learned["learned_from_votes"] == 2 and learned["until_vote"] == 2
        assert "retrained from 2 lens / not_lens votes" in learned["description"]
        rank = {i["object_id"]: i["rank"] for i in learned["items"]}
        score = {i["object_id"]: i["score"] for i in learned["items"]}
        before = {i["object_id"]: i["score"] for i in none["items"]}
        # the votes are answers: voted not a lens, last with score 0; voted a lens, first with score 1
        assert score[top] == 0.0 < before[top] and rank[top] == len(ids)
        assert rank[riser] == 1 and score[riser] == 1.0 > before[riser]
        assert "voted lens score 1" in learned["description"]

        # one more vote: the ranking named by until_vote=2 stays what it was
        assert c.post("/api/v1/votes", json={"object_id": ids[1], "label": "not_lens"}).status_code == 201
        again = lenses(learn="true", until_vote=2)
        assert again["items"] == learned["items"] and again["ranking_version"] == learned["ranking_version"]
        assert lenses(learn="true")["learned_from_votes"] == 3

        hidden = lenses(learn="true", hide_voted="true")
        assert hidden["hidden_voted"] == 3 and not {top, riser, ids[1]} & {i["object_id"] for i in hidden["items"]}

        assert lenses(until_vote=2)["items"] == learned["items"]  # until_vote alone names the learned ranking

        # reproducible from its version and the votes alone: a new service (nothing kept) gives it again
        with TestClient(create_app(settings)) as fresh:
            rebuilt = fresh.get("/api/v1/rankings/lenses", params={"limit": 500, "until_vote": 2}).json()
        assert rebuilt["items"] == learned["items"] and rebuilt["ranking_version"] == learned["ranking_version"]
        # filtered and paged, a learned ranking is the full one's rows that pass, in the same order
        z = {i["object_id"]: i["z"] for i in learned["items"]}
        z_max = float(np.median(list(z.values())))
        passing = [i["object_id"] for i in learned["items"] if i["z"] <= z_max]
        page = lenses(until_vote=2, z_max=z_max, limit=5, offset=3)
        assert page["total"] == len(passing) and [i["object_id"] for i in page["items"]] == passing[3:8]
        assert [i["rank"] for i in page["items"]] == [4, 5, 6, 7, 8]
        nothing = lenses(until_vote=2, mag_max=-5)  # brighter than any object of the survey
        assert nothing["total"] == 0 and nothing["note"] == "no object of this ranking passes the filters"
        for params, word in (({"until_vote": -1}, "until_vote"), ({"learn": "maybe"}, "learn"),
                             ({"hide_voted": "2"}, "hide_voted"), ({"learn": "true", "z_min": -1}, "z_min")):
            r = c.get("/api/v1/rankings/lenses", params=params)
            assert r.status_code == 422 and word in r.text, (params, r.text)

        # a deleted vote is no longer learned from, even below the last vote id
        assert c.delete("/api/v1/votes/1", params={"voter": "ada"}).status_code == 204
        after = lenses(learn="true")
        assert after["learned_from_votes"] == 2 and after["until_vote"] == 3


def test_learning_with_nothing_to_learn_from_is_an_empty_list_with_a_note(tiny_artifacts: Path, tmp_path: Path) -> None:
    settings = ServiceSettings(artifacts=tiny_artifacts, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0)
    with TestClient(create_app(settings)) as c:
        body = c.get("/api/v1/rankings/lenses", params={"learn": "true"}).json()
        assert body["total"] == 0 and body["items"] == [] and "nothing to learn" in body["note"]
        oid = str(IndexedSurvey.open_current(tiny_artifacts).catalog["object_id"][3])
        assert c.post("/api/v1/votes", json={"object_id": oid, "label": "lens"}).status_code == 201
        body = c.get("/api/v1/rankings/lenses", params={"learn": "true", "include_known": "true"}).json()
        assert body["learned_from_votes"] == 1 and body["total"] == 240 and body["note"] is None
        # the one positive is near the top of 240 (the tiny encoder's embeddings are all within cosine
        # 0.02 of each other, so a few look-alikes score as high)
        assert oid in [i["object_id"] for i in body["items"][:10]]


def test_rankings_take_the_filters_of_similarity_search(client: TestClient, store: IndexedSurvey) -> None:
    z = np.asarray(store.catalog["z"], dtype=float)
    lo, hi = float(np.quantile(z, 0.25)), float(np.quantile(z, 0.6))
    inside = (z >= lo) & (z <= hi)
    for route in ("anomalies", "artifacts", "combined"):
        body = client.get(f"/api/v1/rankings/{route}", params={"limit": 500, "z_min": lo, "z_max": hi}).json()
        assert body["total"] == int(inside.sum()) == len(body["items"])
        assert all(lo <= i["z"] <= hi for i in body["items"])
        scores = [i["score"] for i in body["items"]]
        assert scores == sorted(scores, reverse=True) and [i["rank"] for i in body["items"]][:3] == [1, 2, 3]
    ra, dec = float(store.catalog["ra"][0]), float(store.catalog["dec"][0])
    cone = client.get("/api/v1/rankings/anomalies", params={"ra": ra, "dec": dec, "radius": 0.5, "limit": 500}).json()
    assert cone["total"] == int(store.cone_mask(ra, dec, 0.5).sum()) >= 1
    bad = client.get("/api/v1/rankings/artifacts", params={"ra": ra, "dec": dec})
    assert bad.status_code == 422 and "ra, dec and radius together" in bad.json()["detail"]
    bad = client.get("/api/v1/rankings/lenses", params={"z_min": 2, "z_max": 1})
    assert bad.status_code == 422 and "above z_max" in bad.json()["detail"]


def test_learned_rankings_are_kept_only_while_recent() -> None:
    from app.routes.rankings import Recent

    built: list[int] = []
    r = Recent(3)

    def make(i: int):
        return lambda: built.append(i) or i

    assert [r.get(i, make(i)) for i in range(5)] == [0, 1, 2, 3, 4] and len(r) == 3
    assert r.get(4, make(99)) == 4 and built == [0, 1, 2, 3, 4]  # kept: not rebuilt
    assert r.get(0, make(0)) == 0 and built[-1] == 0  # dropped long ago: rebuilt from the same inputs
    assert len(r) == 3


@pytest.mark.parametrize("route", ["anomalies", "combined", "artifacts"])
def test_interesting_and_boring_votes_reorder_the_anomaly_lists(published_tiny: Path, tmp_path: Path,
                                                                route: str) -> None:
    """On one engine: learning from votes reads the version's files, not the vector engine."""
    store = IndexedSurvey.open_current(published_tiny)
    settings = ServiceSettings(artifacts=published_tiny, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0)
    classes = np.asarray(store.catalog["class"]).astype(str)
    with TestClient(create_app(settings)) as c:
        def ranked(**params):
            r = c.get(f"/api/v1/rankings/{route}", params={"limit": 500, **params})
            assert r.status_code == 200, r.text
            return r.json()

        built = ranked()
        none = ranked(learn="true")  # nothing voted: the built order
        assert none["learned_from_votes"] == 0 and none["ranking_version"] == f"{built['version']}:votes<=0"
        assert [i["object_id"] for i in none["items"]] == [i["object_id"] for i in built["items"]]

        # an astronomer finds one kind of galaxy interesting and another boring
        order = [i["object_id"] for i in built["items"]]
        cls = {oid: classes[store.row_of(oid)] for oid in order}
        liked, disliked = "spiral", "elliptical"
        like = [o for o in reversed(order) if cls[o] == liked][:6]  # the least anomalous of them
        dislike = [o for o in order if cls[o] == disliked][:6]
        for oid in like:
            assert c.post("/api/v1/votes", json={"object_id": oid, "label": "interesting"}).status_code == 201
        for oid in dislike:
            assert c.post("/api/v1/votes", json={"object_id": oid, "label": "boring"}).status_code == 201
        assert c.post("/api/v1/votes", json={"object_id": order[0], "label": "lens"}).status_code == 201  # not these

        learned = ranked(learn="true")
        assert learned["learned_from_votes"] == 12 and learned["until_vote"] == 12
        assert "re-ordered by 12 interesting / boring / relevance votes" in learned["description"]
        score = {i["object_id"]: i["score"] for i in learned["items"]}
        assert all(score[o] == 1.0 for o in like) and all(score[o] == 0.0 for o in dislike)
        voted = set(like) | set(dislike)

        def mean_rank(body, kind):
            rest = [i["object_id"] for i in body["items"] if i["object_id"] not in voted]
            return np.mean([r for r, o in enumerate(rest) if cls[o] == kind])

        # the unvoted objects like the interesting ones rise, those like the boring ones sink
        assert mean_rank(learned, liked) < mean_rank(built, liked)
        assert mean_rank(learned, disliked) > mean_rank(built, disliked)

        hidden = ranked(learn="true", hide_voted="true")
        assert hidden["hidden_voted"] == 12 and not voted & {i["object_id"] for i in hidden["items"]}
        assert c.post("/api/v1/votes", json={"object_id": order[1], "label": "boring"}).status_code == 201
        assert ranked(until_vote=12)["items"] == learned["items"]  # named by its last vote, as it was
        with TestClient(create_app(settings)) as fresh:  # and rebuilt from the version and the votes alone
            again = fresh.get(f"/api/v1/rankings/{route}", params={"limit": 500, "until_vote": 12}).json()
        assert again["items"] == learned["items"]
        r = c.get(f"/api/v1/rankings/{route}", params={"learn": "sometimes"})
        assert r.status_code == 422 and "learn" in r.text


def test_relevance_scores_grade_the_anomaly_list(published_tiny: Path, tmp_path: Path) -> None:
    """0-5 relevance votes (Astronomaly's scale) teach the anomaly list like interesting / boring, graded:
    a relevance of r scores r / 5 in the learned list; objects like the 5s rise, like the 0s sink."""
    store = IndexedSurvey.open_current(published_tiny)
    settings = ServiceSettings(artifacts=published_tiny, votes_db=tmp_path / "votes.sqlite", watch_interval_s=0)
    classes = np.asarray(store.catalog["class"]).astype(str)
    with TestClient(create_app(settings)) as c:
        def ranked(**params):
            r = c.get("/api/v1/rankings/anomalies", params={"limit": 500, **params})
            assert r.status_code == 200, r.text
            return r.json()

        built = ranked()
        order = [i["object_id"] for i in built["items"]]
        cls = {oid: classes[store.row_of(oid)] for oid in order}
        fives = [o for o in reversed(order) if cls[o] == "spiral"][:6]
        zeros = [o for o in order if cls[o] == "elliptical"][:6]
        middling = next(o for o in order if cls[o] == "irregular")
        for oid, score in [*((o, 5) for o in fives), *((o, 0) for o in zeros), (middling, 2)]:
            r = c.post("/api/v1/votes", json={"object_id": oid, "label": "relevance", "score": score})
            assert r.status_code == 201, r.text
        learned = ranked(learn="true")
        assert learned["learned_from_votes"] == 13
        score = {i["object_id"]: i["score"] for i in learned["items"]}
        assert all(score[o] == 1.0 for o in fives) and all(score[o] == 0.0 for o in zeros)
        assert score[middling] == pytest.approx(0.4)
        voted = {*fives, *zeros, middling}

        def mean_rank(body, kind):
            rest = [i["object_id"] for i in body["items"] if i["object_id"] not in voted]
            return np.mean([r for r, o in enumerate(rest) if cls[o] == kind])

        assert mean_rank(learned, "spiral") < mean_rank(built, "spiral")
        assert mean_rank(learned, "elliptical") > mean_rank(built, "elliptical")
        hidden = ranked(learn="true", hide_voted="true")
        assert hidden["hidden_voted"] == 13
