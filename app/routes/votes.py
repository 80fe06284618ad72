"""Votes: astronomers label candidates (lens / not_lens / interesting / boring); votes sharpen
the rankings in a later re-ranking step.

The votes file is `settings.votes_db`, or `<artifacts>/votes.sqlite`: it outlives index versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from ..deps import Credentials, IndexDep, SettingsDep, check_bearer
from ..errors import ApiError
from ..formats import DESCRIPTIONS, FormatQuery, columns_of, list_responses, table_response
from ..schemas import ERRORS, ErrorBody
from ..schemas_ops import MAX_LIMIT, MAX_OFFSET, AnyVoteIn, VoteLabel, VoteList, VoteOut
from ..settings import ServiceSettings
from ..votes_store import VotesStore

router = APIRouter(prefix="/api/v1", tags=["votes"])

def votes_path(settings: ServiceSettings) -> Path:
    return Path(settings.votes_db) if settings.votes_db else Path(settings.artifacts) / "votes.sqlite"


def get_votes(request: Request) -> VotesStore:
    """The app's votes store, opened (and its schema created) on first use."""
    state = request.app.state
    store = getattr(state, "votes", None)
    if store is None:
        with state.votes_lock:
            store = getattr(state, "votes", None)
            if store is None:
                store = state.votes = VotesStore(votes_path(state.settings))
    return store


VotesDep = Annotated[VotesStore, Depends(get_votes)]


def may_write(request: Request, settings: SettingsDep, credentials: Credentials) -> None:
    """Who may cast or delete votes: anyone (no write token configured) or holders of the write token;
    either way at most `votes_per_minute` writes per client address (429 with Retry-After beyond)."""
    if settings.write_token:
        check_bearer(settings.write_token, credentials, "write token")
    client = request.client.host if request.client else "unknown"
    wait = request.app.state.vote_limiter.retry_after(client)
    if wait:
        raise ApiError(429, "too_many_votes", f"more than {settings.votes_per_minute} votes a minute from {client}; "
                       f"try again in {wait} s", headers={"Retry-After": str(wait)})


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "a write token is configured and the request lacks it"},
    429: {"model": ErrorBody, "description": "too many votes from this client this minute (Retry-After)"}}


@router.post("/votes", status_code=201, response_model=VoteOut, dependencies=[Depends(may_write)], responses={
    **ERRORS, **WRITE_ERRORS,
    400: {"model": ErrorBody, "description": "the body is not decodable (e.g. invalid UTF-8)"}})
def cast_vote(vote: AnyVoteIn, store: IndexDep, votes: VotesDep) -> VoteOut:
    """Record a vote on an object: `lens`, `not_lens`, `interesting`, `boring`, or `relevance` with a `score`
    from 0 to 5 (Astronomaly's scale). The answer comes once the vote is on disk (SQLite WAL, fsynced),
    with the time and the index version being served."""
    store.row_of(vote.object_id)  # unknown object -> 404
    saved = votes.add(vote.object_id, vote.label, vote.voter, vote.note, store.version, store.weights_sha256,
                      getattr(vote, "score", None))
    return VoteOut(**saved.as_dict())


@router.get("/votes", response_model=VoteList,
            responses={**ERRORS, **list_responses("votes matching the filters, oldest first")})
def list_votes(
    votes: VotesDep,
    object_id: Annotated[str | None, Query(min_length=1, max_length=256, description="only this object")] = None,
    label: Annotated[VoteLabel | None, Query(description="only this label")] = None,
    voter: Annotated[str | None, Query(min_length=1, max_length=100, description="only this voter")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    fmt: FormatQuery = "json",
) -> Any:
    """Votes, oldest first (pages stay stable while new votes arrive), filtered by object, label
    and voter."""
    total, page = votes.list(object_id=object_id, label=label, voter=voter, limit=limit, offset=offset)
    body = VoteList(total=total, limit=limit, offset=offset, items=[VoteOut(**v.as_dict()) for v in page])
    if fmt == "json":
        return body
    rows = [v.as_dict() for v in page]
    return table_response(fmt, rows, columns_of(rows, default=list(VoteOut.model_fields)), name="votes",
                          total=total, kinds={"id": "int", "score": "int"}, description="skysift votes",
                          descriptions={**DESCRIPTIONS, "score": "0-5 relevance of a relevance vote (empty otherwise)"},
                          infos={"limit": limit, "offset": offset})


@router.delete("/votes/{vote_id}", status_code=204, dependencies=[Depends(may_write)], responses={
    **ERRORS, **WRITE_ERRORS, 403: {"model": ErrorBody, "description": "the vote was cast by another voter"},
    404: {"model": ErrorBody, "description": "no vote with this id"}})
def delete_vote(
    votes: VotesDep,
    vote_id: Annotated[int, PathParam(ge=1, le=2**63 - 1, description="the id POST /votes answered")],
    voter: Annotated[str, Query(min_length=1, max_length=100, description="who cast it, as in the vote")],
) -> Response:
    """Withdraw one's own vote: only the voter named in the vote may delete it (voters are free text, so
    this guards against mistakes, not impostors; see the trust model in docs/api.md)."""
    outcome = votes.delete(vote_id, voter)
    if outcome == "missing":
        raise ApiError(404, "unknown_vote", f"no vote with id {vote_id}")
    if outcome == "other_voter":
        raise ApiError(403, "not_your_vote", f"vote {vote_id} was cast by another voter than {voter!r}")
    return Response(status_code=204)
