"""Rankings, paginated: unusual objects (embedding density), broken pixels (data-quality detectors), the
two combined, and the best strong-lens candidates."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from indexer.lens_learning import LensLearner, interest_scores, learner_inputs
from indexer.lens_learning import interest_learner as make_interest_learner
from indexer.scores import top_rows
from indexer.store import Filters, IndexedSurvey

from ..deps import IndexDep
from ..formats import Format, FormatQuery, column_kinds, columns_of, list_responses, record_columns, table_response
from ..schemas import ERRORS, clean
from ..schemas_ops import MAX_LIMIT, MAX_OFFSET, RankedRecord, RankingResponse
from ..votes_store import VotesStore
from .objects import REGION, make_filters
from .votes import VotesDep

router = APIRouter(prefix="/api/v1", tags=["rankings"])
T = TypeVar("T")

Kind = Literal["anomaly", "lens", "artifact", "combined"]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page (at most {MAX_LIMIT})")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip (0 = from the top)")]
RECENT_LEARNED = 8  # rankings learned from votes kept per version (each holds a score per object)
# A version's embeddings are copied to float32 for retraining from votes up to this size (1 GiB at
# 10^6 x 256): a retrain then reads them without converting float16 (~0.7 s of one core per pass at
# 10^6). Larger versions are read from the float16 memory map, block by block.
DENSE_MAX_BYTES = 2 << 30


def ranking_filters(
    z_min: Annotated[float | None, Query(ge=0, le=20, description="keep objects with z >= z_min")] = None,
    z_max: Annotated[float | None, Query(ge=0, le=20, description="keep objects with z <= z_max")] = None,
    mag_max: Annotated[float | None, Query(ge=-10, le=40, description="keep objects at most this faint")] = None,
    ra: Annotated[float | None, Query(ge=0, lt=360, description=f"sky-region centre, deg ICRS. {REGION}")] = None,
    dec: Annotated[float | None, Query(ge=-90, le=90, description=f"sky-region centre, deg ICRS. {REGION}")] = None,
    radius: Annotated[float | None, Query(gt=0, le=180, description=f"sky-region radius, deg. {REGION}")] = None,
) -> Filters:
    """The filters of similarity search, on a ranking: checked by the same make_filters."""
    return make_filters(None, z_min, z_max, mag_max, 1, 1, ra, dec, radius)[1]


FiltersDep = Annotated[Filters, Depends(ranking_filters)]


def scores_of(store: IndexedSurvey, kind: Kind) -> np.ndarray:
    return {"anomaly": store.anomaly, "lens": store.lens, "artifact": store.quality,
            "combined": store.combined}[kind]


def ranked_rows(store: IndexedSurvey, kind: Kind, include_known: bool = False) -> np.ndarray:
    """Rows with a finite score, highest score first (ties: lower row first). The lens ranking leaves
    out the known lenses unless `include_known`; the anomaly ranking keeps every object."""
    include_known = include_known or kind != "lens"

    def order() -> np.ndarray:  # sorting 10^6 scores costs ~0.1 s, too much per page: once per version
        scores = np.asarray(scores_of(store, kind), dtype=np.float64)
        keep = np.isfinite(scores) & (True if include_known else ~store.known_lens)
        rows = np.nonzero(keep)[0]
        return rows[np.argsort(-scores[rows], kind="stable")]

    return store.derived(("ranking", kind, include_known), order)


class Recent:
    """The last `size` values built, by key, under a lock: rankings learned from votes come one per new
    vote, and a version's derived state (kept until the version is dropped) must not pile them up."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            else:
                self._items[key] = build()
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return self._items[key]

    def __len__(self) -> int:
        return len(self._items)


def recent(store: IndexedSurvey) -> Recent:
    return store.derived(("recent-learned",), lambda: Recent(RECENT_LEARNED))


def learner_embeddings(store: IndexedSurvey) -> np.ndarray:
    """The embeddings the version's learners read: a float32 copy (below DENSE_MAX_BYTES) for the
    linear path of a version without profiles, which passes over them per vote; otherwise the map."""
    emb = store.embeddings
    if store.lens_features is None and emb.dtype != np.float32 and emb.size * 4 <= DENSE_MAX_BYTES:
        return store.derived(("float32-embeddings",), lambda: np.asarray(emb, dtype=np.float32))
    return emb


def shared_inputs(store: IndexedSurvey) -> np.ndarray | None:
    """The MLP's inputs, computed once per version for all its learners (None without profiles)."""
    features = store.lens_features
    if features is None:
        return None
    return store.derived(("learner-inputs",), lambda: learner_inputs(store.embeddings, features, seed_of(store)))


def seed_of(store: IndexedSurvey) -> int:
    return int(store.info.settings.get("seed", 0))


def learner(store: IndexedSurvey) -> LensLearner:
    """The version's lens learner: what it keeps between votes (the MLP's inputs; for a version without
    profiles, a float32 copy of the embeddings below DENSE_MAX_BYTES and the similarities) lives with
    the version and goes with it."""
    # the shared pieces first: store.derived builds under one lock, so a build must not call it again
    emb, inputs = learner_embeddings(store), shared_inputs(store)

    def build() -> LensLearner:
        return LensLearner(emb, np.nonzero(store.known_lens)[0], seed=seed_of(store),
                           features=store.lens_features, prior=store.lens, inputs=inputs)

    return store.derived(("lens-learner",), build)


def interest_learner(store: IndexedSurvey, kind: Kind) -> LensLearner:
    """The version's learner of "interesting" for the `kind` list (`indexer.lens_learning.interest_learner`)."""
    emb, inputs = learner_embeddings(store), shared_inputs(store)  # outside the build, as in `learner`

    def build() -> LensLearner:
        return make_interest_learner(emb, scores_of(store, kind), seed=seed_of(store),
                                     features=store.lens_features, inputs=inputs)

    return store.derived(("interest-learner", kind), build)


@dataclass(frozen=True)
class Learned:
    """A ranking retrained from the votes up to vote `until`: the lens score from the known lenses and
    the objects voted "lens" / "not_lens", or a built ranking re-ordered by "interesting" / "boring"."""

    scores: np.ndarray
    until: int
    n_votes: int
    key: tuple[Any, ...]  # what it was learned from: (last vote id, hash of the votes)


LEARNS_FROM: dict[str, tuple[str, ...]] = {"lens": ("lens", "not_lens"),
                                            "anomaly": ("interesting", "boring", "relevance"),
                                            "combined": ("interesting", "boring", "relevance"),
                                            "artifact": ("interesting", "boring", "relevance")}
GRADE = {"interesting": 1.0, "boring": 0.0}  # and a relevance vote's score / 5


def learn_from_votes(store: IndexedSurvey, votes: VotesStore, until_vote: int | None, kind: Kind = "lens") -> Learned:
    """The `kind` ranking as learned from the votes with id <= until_vote (None: every vote so far),
    built once per (version, votes) and kept among the version's recent ones: paging and reloading cost
    nothing, and a ranking named by its last vote is the same after more votes arrive (rebuilt, if it
    has been dropped, from the same votes)."""
    cast = votes.labelled(LEARNS_FROM[kind], until_vote)
    until = until_vote if until_vote is not None else (cast[-1][0] if cast else 0)
    # keyed by the votes themselves too: a vote deleted since (DELETE /votes) is a different ranking
    key = (until, hash(tuple(cast)))

    def build() -> Learned:
        latest: dict[str, tuple[str, int | None]] = {}
        for _, oid, label, score in cast:  # a later vote on the same object wins
            latest[oid] = (label, score)
        rows = {oid: store.row_of(oid) for oid in latest if store.has_object(oid)}
        if kind == "lens":
            pos = [r for oid, r in rows.items() if latest[oid][0] == "lens"]  # in the order first voted on
            neg = [r for oid, r in rows.items() if latest[oid][0] == "not_lens"]
            # NaN everywhere with nothing to learn from (no known lens, no lens vote): an empty list with a note
            return Learned(learner(store).scores(pos, neg), until, len(rows), key)
        graded = {r: GRADE[latest[oid][0]] if latest[oid][0] in GRADE else (latest[oid][1] or 0) / 5.0
                  for oid, r in rows.items()}
        return Learned(interest_scores(interest_learner(store, kind), graded), until, len(rows), key)

    return recent(store).get((f"learned-{kind}", *key), build)


def ranking(store: IndexedSurvey, kind: Kind, limit: int, offset: int, include_known: bool = False,
            learned: Learned | None = None, hide_voted: np.ndarray | None = None,
            filters: Filters | None = None) -> RankingResponse:
    scores = learned.scores if learned else scores_of(store, kind)
    mask = store.filter_mask(filters) if filters is not None else None  # the filters of a similarity search
    hidden = 0
    if learned is None:  # a built score: its order is sorted once per version
        order = ranked_rows(store, kind, include_known)
        if mask is not None:
            order = order[mask[order]]
        if hide_voted is not None and len(hide_voted):
            keep = ~np.isin(order, hide_voted)
            hidden = int((~keep).sum())
            order = order[keep]
        total, page = len(order), order[offset : offset + limit]
    else:  # a score per vote: the top of it by argpartition, not a sort of the survey per vote
        eligible = np.isfinite(scores) & (True if include_known or kind != "lens" else ~store.known_lens)
        if mask is not None:
            eligible &= mask
        if hide_voted is not None and len(hide_voted):
            voted = np.zeros(len(store), bool)
            voted[hide_voted] = True
            hidden = int((eligible & voted).sum())
            eligible &= ~voted
        total = int(eligible.sum())
        page = top_rows(scores, eligible, offset + limit)[offset:]
    items = [RankedRecord(**{k: clean(v) for k, v in store.record(int(row)).items() if k != "healpix"},
                          score=float(scores[row]), rank=offset + i + 1, known_lens=bool(store.known_lens[row]))
             for i, row in enumerate(page)]
    left_out = 0 if include_known or kind != "lens" else int((store.known_lens & np.isfinite(scores)).sum())
    described = store.info.describe(kind)
    note = None
    if not total:
        note = (f"version {store.version} has no {kind} scores"
                + (f" ({described})" if described else "")
                + ("; publish a version built with known lenses (lens_labels) to rank lens candidates"
                   if kind == "lens" else ""))
    elif not items:
        note = f"offset {offset} is past the end of the ranking ({total} objects)"
    if not total and mask is not None and np.isfinite(scores).any():
        note = "no object of this ranking passes the filters"
    if learned is not None and kind == "lens" and not np.isfinite(scores).any():
        note = (f"nothing to learn a lens score from: version {store.version} has no known lenses and no object "
                f"is voted 'lens' (up to vote {learned.until}); vote some first")
    if learned is not None and kind == "lens":
        described = (f"lens score retrained from {learned.n_votes} lens / not_lens votes (up to vote "
                     f"{learned.until}) and the {int(store.known_lens.sum())} known lenses; objects voted lens "
                     "score 1, those voted not_lens 0")
    elif learned is not None:
        described = (f"{kind} ranking re-ordered by {learned.n_votes} interesting / boring / relevance votes (up "
                     f"to vote {learned.until}): 0.7 x a model of what was called interesting + 0.3 x the "
                     "ranking's own score as a percentile; objects voted interesting score 1, boring 0, a "
                     "relevance of r out of 5 r / 5")
    return RankingResponse(version=store.version, ranking=kind, description=described, total=int(total),
                           limit=limit, offset=offset, note=note, known_left_out=left_out,
                           learned_from_votes=learned.n_votes if learned else None,
                           until_vote=learned.until if learned else None,
                           ranking_version=store.version + (f":votes<={learned.until}" if learned else ""),
                           hidden_voted=hidden, items=items)


def respond(store: IndexedSurvey, body: RankingResponse, fmt: Format, name: str) -> RankingResponse | Response:
    if fmt == "json":
        return body
    rows: list[dict[str, Any]] = [i.model_dump() for i in body.items]
    cols = columns_of(rows, default=record_columns(store.catalog.names, "score", "rank", "known_lens"))
    return table_response(fmt, rows, cols, name=name, total=body.total, version=body.version,
                          kinds=column_kinds(store.catalog.columns),
                          description=f"skysift {body.ranking} ranking, version {body.version}",
                          infos={"ranking": body.ranking, "limit": body.limit, "offset": body.offset,
                                 "known_left_out": body.known_left_out,
                                 **({"note": body.note} if body.note else {})})

LearnQuery = Annotated[bool, Query(description="re-order the ranking by the votes: a classifier of the objects voted "
                                               "interesting against those voted boring (and a random sample), "
                                               "blended with the ranking's own score; votes are answers: voted "
                                               "interesting scores 1, voted boring 0")]
UntilQuery = Annotated[int | None, Query(ge=0, le=2**62, description=(
    "learn from the votes up to this vote id only (implies learn=true; the until_vote of an earlier answer gives "
    "that ranking again)"))]
HideQuery = Annotated[bool, Query(description="leave out objects that already have a vote of the labels this "
                                              "ranking learns from")]


def learned_and_voted(store: IndexedSurvey, votes: VotesStore, kind: Kind, learn: bool, until_vote: int | None,
                      hide_voted: bool) -> tuple[Learned | None, np.ndarray | None]:
    """The ranking learned from the votes (when asked for: learn=true or an until_vote) and the rows to
    hide (when hide_voted)."""
    learned = learn_from_votes(store, votes, until_vote, kind) if learn or until_vote is not None else None
    voted = None
    if hide_voted:
        oids = {oid for _, oid, _, _ in votes.labelled(LEARNS_FROM[kind], until_vote)}
        voted = np.array(sorted(store.row_of(o) for o in oids if store.has_object(o)), dtype=np.int64)
    return learned, voted


@router.get("/rankings/anomalies", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the most anomalous objects, highest score first")})
def anomalies(store: IndexDep, votes: VotesDep, filters: FiltersDep, limit: Limit = 50, offset: Offset = 0,
              fmt: FormatQuery = "json", learn: LearnQuery = False, until_vote: UntilQuery = None,
              hide_voted: HideQuery = False) -> Any:
    """The most anomalous objects (mean cosine distance to their nearest neighbours in embedding
    space: objects in sparse regions of the representation), highest score first; with learn=true,
    re-ordered by the interesting / boring votes."""
    learned, voted = learned_and_voted(store, votes, "anomaly", learn, until_vote, hide_voted)
    return respond(store, ranking(store, "anomaly", limit, offset, False, learned, voted, filters), fmt, "anomalies")


@router.get("/rankings/artifacts", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the stamps most likely to hold broken pixels, highest score first")})
def artifacts(store: IndexDep, votes: VotesDep, filters: FiltersDep, limit: Limit = 50, offset: Offset = 0,
              fmt: FormatQuery = "json", learn: LearnQuery = False, until_vote: UntilQuery = None,
              hide_voted: HideQuery = False) -> Any:
    """The stamps most likely to hold broken pixels: cosmic rays, dead or hot columns, saturation,
    satellite trails, ghosts. The score is the largest robust z-score of five pixel detectors, each
    record's `quality_flag` names the one that fired. Versions built before the detectors have none
    and answer an empty list with a note. With learn=true, re-ordered by the interesting / boring /
    relevance votes (e.g. the kinds of artifact worth masking first)."""
    learned, voted = learned_and_voted(store, votes, "artifact", learn, until_vote, hide_voted)
    return respond(store, ranking(store, "artifact", limit, offset, False, learned, voted, filters), fmt, "artifacts")


@router.get("/rankings/combined", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("broken pixels or unusual objects, highest score first")})
def combined(store: IndexDep, votes: VotesDep, filters: FiltersDep, limit: Limit = 50, offset: Offset = 0,
             fmt: FormatQuery = "json", learn: LearnQuery = False, until_vote: UntilQuery = None,
             hide_voted: HideQuery = False) -> Any:
    """Anything odd: per object the larger of the anomaly score's and the data-quality score's robust
    z-scores against the survey, so one list holds both broken stamps and objects unlike their neighbours;
    with learn=true, re-ordered by the interesting / boring votes."""
    learned, voted = learned_and_voted(store, votes, "combined", learn, until_vote, hide_voted)
    return respond(store, ranking(store, "combined", limit, offset, False, learned, voted, filters), fmt, "combined")


@router.get("/rankings/lenses", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the best strong-lens candidates, highest score first")})
def lenses(store: IndexDep, votes: VotesDep, filters: FiltersDep, limit: Limit = 50, offset: Offset = 0,
           fmt: FormatQuery = "json",
           include_known: Annotated[bool, Query(description="also list the known lenses the score was trained "
                                                            "from (flagged known_lens)")] = False,
           learn: Annotated[bool, Query(description="retrain the score from the votes: objects voted lens join "
                                                    "the known lenses, those voted not_lens negatives; votes are "
                                                    "answers: voted lens scores 1, voted not_lens 0")] = False,
           until_vote: Annotated[int | None, Query(ge=0, le=2**62, description=(
               "learn from the votes up to this vote id only (implies learn=true; the until_vote of an earlier "
               "answer gives that ranking again)"))] = None,
           hide_voted: Annotated[bool, Query(description="leave out objects that already have a lens / not_lens "
                                                         "vote")] = False) -> Any:
    """The best strong-lens candidates (classifier on frozen embeddings trained from known lenses),
    highest score first. The known lenses themselves score highest and are no discovery: they are
    left out unless include_known=true (then flagged `known_lens`), and `known_left_out` counts them.
    Objects without a lens score are left out; a version built without known lenses has none, and
    answers an empty list with a note saying so."""
    # naming a learned ranking's last vote asks for that ranking
    learned, voted = learned_and_voted(store, votes, "lens", learn, until_vote, hide_voted)
    return respond(store, ranking(store, "lens", limit, offset, include_known, learned, voted, filters), fmt,
                   "lenses")
