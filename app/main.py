"""create_app(settings): the FastAPI service and the static explorer page.

skysift serve --artifacts artifacts --port 8000
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from . import errors, uploads
from .deps import reject_unknown_query
from .holder import IndexHolder
from .middleware import AccessLog, BodyLimit, HeadAsGet, LimitBodies
from .ratelimit import RateLimiter
from .routes import admin, conesearch, cutouts, health, map, objects, rankings, search, votes
from .settings import ServiceSettings

STATIC = Path(__file__).parent / "static"


SETTINGS_FILE = "SKYSIFT_SETTINGS_FILE"  # names the JSON file of resolved settings `skysift serve` writes


def create_app_from_env() -> FastAPI:
    """The factory each `skysift serve --workers N` process calls: the ServiceSettings in the JSON
    file SKYSIFT_SETTINGS_FILE names (what the parent resolved from its flags, --config, --set and
    environment), else from SKYSIFT_* variables."""
    configure_logging()  # a worker process starts with no logging set up
    path = os.environ.get(SETTINGS_FILE)
    # every field is in the file: as keyword arguments they win over any SKYSIFT_* variable
    settings = ServiceSettings(**json.loads(Path(path).read_text())) if path else ServiceSettings()
    limit_search_threads(settings.search_threads)
    return create_app(settings)


def configure_logging() -> None:
    """INFO to stderr with timestamps, so the access log shows (no-op where logging is set up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def limit_search_threads(n: int) -> None:
    """FAISS's OpenMP pool size for this serving process (not set by create_app: tests share their process)."""
    import faiss

    faiss.omp_set_num_threads(n)


def create_app(settings: ServiceSettings) -> FastAPI:
    holder = IndexHolder(settings.artifacts, settings.survey_root, settings.verify_hashes, settings.backend,
                         settings.milvus_uri)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.try_reload()
        task = asyncio.create_task(_watch(holder, settings.watch_interval_s)) if settings.watch_interval_s > 0 else None
        yield
        if task:
            task.cancel()

    app = FastAPI(
        title="skysift",
        version="0.1.0",
        lifespan=lifespan,
        description="Self-supervised similarity search over a sky survey.",
        dependencies=[Depends(reject_unknown_query)],  # every route: a mistyped parameter is a 422
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.decode_slots = asyncio.Semaphore(settings.max_concurrent_decodes)  # uploads decoding at once
    app.state.vote_limiter = RateLimiter(settings.votes_per_minute)  # votes cast or deleted per client a minute
    app.state.votes_lock = threading.Lock()  # the votes store is opened (schema created) once, on first use
    errors.install(app)
    for r in (
        objects.router,
        search.router,
        rankings.router,
        votes.router,
        conesearch.router,
        cutouts.router,
        map.router,
        admin.router,
        health.router,
    ):
        app.include_router(r)

    # upload bodies have their own, larger limit (and error code); every other body is JSON or nothing
    upload_limit = BodyLimit(uploads.body_limit(settings.max_upload_bytes), "upload_too_large", "upload")
    app.add_middleware(LimitBodies, default=BodyLimit(settings.max_body_bytes),
                       per_path={search.CUTOUT_PATH: upload_limit})
    app.add_middleware(HeadAsGet)
    app.add_middleware(AccessLog)  # added last = outermost: it sees (and ids, and logs) every answer
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


WRITE_PATHS = ("/api/v1/votes", "/api/v1/votes/{vote_id}")  # app/routes/votes.py: may_write


def _openapi(app: FastAPI, settings: ServiceSettings) -> dict[str, Any]:
    """FastAPI's document, saying what this service's settings make of the vote writes' bearer
    token: without `write_token` anyone may vote (docs/api.md, trust model), so the token is optional
    there (`security: [{}, {HTTPBearer: []}]`, OpenAPI's "no credentials, or these")."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        if not settings.write_token:
            for path in WRITE_PATHS:
                for op in schema["paths"].get(path, {}).values():
                    if op.get("security") and {} not in op["security"]:
                        op["security"] = [{}, *op["security"]]
        app.openapi_schema = schema
    return app.openapi_schema


async def _watch(holder: IndexHolder, interval: float) -> None:
    """Follow `current`: load a newly published version in a thread, then swap."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(holder.try_reload)
