"""Liveness, readiness and the version being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..deps import IndexDep
from ..errors import error_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "no version loaded yet"}})
def readyz(request: Request) -> Any:
    """Ready when a published version is loaded."""
    holder = request.app.state.holder
    if not holder.loaded and not holder.try_reload():
        return error_response(503, "not_ready", "no published version could be loaded yet")
    return {"status": "ready", "version": holder.get().version}


@router.get("/api/v1/version")
def version(store: IndexDep) -> dict[str, Any]:
    """Summary of the manifest of the version being served, and the survey's sky footprint: the
    RA-Dec box of its positioned objects (ra_min_deg > ra_max_deg when it runs through RA 0), or
    null when no object has a position."""
    m = store.info
    return {"version": m.version, "created": m.created, "n_objects": m.n_objects,
            "embedding_dim": m.embedding_dim, "index": m.index.model_dump(), "encoder": m.encoder.model_dump(),
            "survey": {"name": m.survey.name, "bands": list(m.survey.bands),
                       "pixel_scale_arcsec": m.survey.pixel_scale_arcsec},
            "footprint": store.footprint, "code_version": m.code_version}
