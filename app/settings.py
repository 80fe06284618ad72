"""ServiceSettings: built by `skysift serve` (or a test) and passed to create_app."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoder.upload_limits import MAX_DECODED_PX, MAX_FITS_CARDS, MAX_FITS_HDUS, MAX_SIDE_PX

from .schemas import MAX_CUTOUT_PX, MAX_K


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_", extra="forbid")

    artifacts: Path = Path("artifacts")
    survey_root: Path | None = None  # override the survey path recorded in the manifest (containers)
    # Vector engine: "faiss" (index.faiss in each worker's memory) or "milvus" (the collection a version
    # built with `skysift index --backend milvus` names, at milvus_uri or else the URI its build recorded)
    backend: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str | None = None
    admin_token: str | None = None  # bearer token for /admin/reload; None disables the route (401)
    watch_interval_s: float = 2.0  # how often to look for a new `current` (0 = never; reload by API)
    default_k: int = 12
    max_k: int = Field(MAX_K, ge=1, le=MAX_K)  # lower than MAX_K: the OpenAPI document still says MAX_K
    max_upload_bytes: int = 20 * 1024 * 1024
    # every other request body (JSON: examples, votes); 200 example IDs of 256 characters are ~60 kB
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_cutout_px: int = Field(MAX_CUTOUT_PX, ge=8, le=MAX_CUTOUT_PX)
    # What an upload may make the decoder allocate, read from its header before decoding (encoder.upload
    # DecodeLimits, whose docstrings say why these defaults): pixels a side; C x H x W pixel values (a few kB
    # of PNG can announce 4096^2 RGBA); FITS HDUs and header records over all HDUs, counted from the
    # 2880-byte blocks before astropy parses a card.
    max_upload_side_px: int = Field(MAX_SIDE_PX, ge=8)
    max_upload_decoded_px: int = Field(MAX_DECODED_PX, ge=1)
    max_upload_fits_hdus: int = Field(MAX_FITS_HDUS, ge=1)
    max_upload_fits_cards: int = Field(MAX_FITS_CARDS, ge=36)  # 36 records fill one block
    # uploads decoded and embedded at once (each takes a few copies of its decoded pixels); more wait their turn
    max_concurrent_decodes: int = Field(2, ge=1)
    max_cone_records: int = Field(10_000, ge=1)  # the cone search's MAXREC ceiling (rows per answer)
    # serve a version only if its files match their sha256 in the manifest (one read of the files per load)
    verify_hashes: bool = True
    # Votes: with a write token, casting and deleting need 'Authorization: Bearer <token>' (reading stays open);
    # each client address may cast or delete at most this many votes a minute (429 with Retry-After beyond)
    write_token: str | None = None
    votes_per_minute: int = Field(60, ge=1)
    votes_db: Path | None = None  # SQLite file for votes; None -> <artifacts>/votes.sqlite (outlives versions)
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1)  # uvicorn worker processes; each loads its own copy of the version
    # FAISS OpenMP threads per worker: one query gains nothing from more, and busy threads starve the event loop
    search_threads: int = 1
