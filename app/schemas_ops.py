"""Wire models of the rankings, votes and admin routes (kept apart from the store's dataclasses)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .schemas import ObjectRecord

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000
VOTE_LABELS = ("lens", "not_lens", "interesting", "boring", "relevance")
VoteLabel = Literal["lens", "not_lens", "interesting", "boring", "relevance"]


# ---------------------------------------------------------------- rankings


class RankedRecord(ObjectRecord):
    score: float = Field(description="the ranking's score (anomaly_score, lens_score, quality_score or the "
                                     "combined score); higher ranks first")
    rank: int = Field(ge=1, description="position in the whole ranking, 1 = highest score")
    known_lens: bool = Field(False, description="one of the known lenses the lens score was trained from")


class RankingResponse(BaseModel):
    version: str
    ranking: Literal["anomaly", "lens", "artifact", "combined"] = Field(
        description="what the list ranks: anomaly = unusual objects (embedding density), artifact = broken "
                    "pixels (data-quality detectors), combined = either, lens = strong-lens candidates")
    description: str | None = Field(None, description="how the score was computed (from the manifest)")
    total: int = Field(description="objects in the whole ranking (objects without a score are left out)")
    limit: int
    offset: int
    note: str | None = Field(None, description="why the ranking is empty, when it is")
    known_left_out: int = Field(0, description="known lenses (the lens score's seeds) left out of this ranking; "
                                               "include_known=true lists them, flagged known_lens")
    learned_from_votes: int | None = Field(None, description="learn=true: the lens / not_lens votes on this "
                                           "version's objects the score was retrained with (null: the built score)")
    until_vote: int | None = Field(None, description="learn=true: the last vote id the ranking saw; pass it back "
                                   "as until_vote to get this very ranking again after more votes")
    ranking_version: str = Field("", description="names this ranking: the index version, plus ':votes<=N' "
                                 "for a ranking learned from votes")
    hidden_voted: int = Field(0, description="hide_voted=true: objects left out because they already have a vote")
    items: list[RankedRecord]


# ---------------------------------------------------------------- votes


def _utf8(value: str | None) -> str | None:
    # JSON allows lone surrogates ("\ud800") that no UTF-8 store can hold: refuse them here (422)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


class _VoteFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_id: str = Field(min_length=1, max_length=256)
    voter: str = Field("anonymous", min_length=1, max_length=100, description="who voted (free text)")
    note: str | None = Field(None, max_length=2000)

    _check_text = field_validator("object_id", "voter", "note")(_utf8)


class VoteIn(_VoteFields):
    """A vote with one of the two-way labels: lens / not_lens, interesting / boring."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"object_id": "sim-0000042", "label": "lens", "voter": "ana", "note": "clear arc to the NE"}]})

    label: Literal["lens", "not_lens", "interesting", "boring"]


class RelevanceVoteIn(_VoteFields):
    """How interesting an object is, 0 (not at all) to 5 (very): Astronomaly's scale."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"object_id": "sim-0000042", "label": "relevance", "score": 4, "voter": "ana"}]})

    label: Literal["relevance"]
    score: int = Field(ge=0, le=5, description="0 (not interesting at all) to 5 (very)")


AnyVoteIn = Annotated[VoteIn | RelevanceVoteIn, Field(discriminator="label")]


class VoteOut(BaseModel):
    id: int = Field(description="increasing with time of recording")
    object_id: str
    label: VoteLabel
    voter: str
    note: str | None
    created: str = Field(description="UTC time the vote was recorded, ISO 8601",
                         examples=["2026-11-23T02:05:07.123+00:00"])
    version: str = Field(description="the index version being served when the vote was cast")
    weights_sha256: str = Field(description="sha256 of the encoder weights of that version")
    score: int | None = Field(None, description="the 0-5 relevance of a relevance vote")


class VoteList(BaseModel):
    total: int = Field(description="votes matching the filters")
    limit: int
    offset: int
    items: list[VoteOut]


# ---------------------------------------------------------------- admin


class ReloadResponse(BaseModel):
    version: str = Field(description="the version being served after the reload")
    changed: bool = Field(description="true when a newly published version was swapped in")
    previous: str | None = Field(None, description="the version served before the reload")
