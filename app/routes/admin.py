"""Admin: load a newly published version now instead of waiting for the watcher.

    curl -X POST -H "Authorization: Bearer $SKYSIFT_ADMIN_TOKEN" http://127.0.0.1:8000/api/v1/admin/reload

The route is disabled (401) unless `ServiceSettings.admin_token` is set. The swap is the same
as the watcher's: the new version loads fully in this request's thread, then replaces the old
one in one assignment; requests in flight finish on the version they started with.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from indexer.errors import ArtifactMismatch, NoCurrentVersion

from ..deps import Credentials, SettingsDep, check_bearer
from ..errors import ApiError, Unauthorized
from ..holder import IndexHolder
from ..schemas import ErrorBody
from ..schemas_ops import ReloadResponse

router = APIRouter(prefix="/api/v1", tags=["admin"])

def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.admin_token:
        raise Unauthorized("admin reload is disabled: the service was started without an admin token "
                           "(set SKYSIFT_ADMIN_TOKEN)")
    check_bearer(settings.admin_token, credentials, "admin token")


@router.post("/admin/reload", response_model=ReloadResponse, dependencies=[Depends(require_admin)], responses={
    401: {"model": ErrorBody, "description": "missing or wrong token, or no token configured (reload disabled)"},
    409: {"model": ErrorBody, "description": "the published version could not be loaded; the old one stays"},
    503: {"model": ErrorBody, "description": "nothing published yet"}})
def reload(request: Request) -> ReloadResponse:
    """Load `current` if it points at another version than the one being served."""
    holder: IndexHolder = request.app.state.holder
    previous = holder.get().version if holder.loaded else None
    try:
        changed = holder.reload()
    except (NoCurrentVersion, ArtifactMismatch):
        raise  # named by the error handlers: 503 no_index, 409 encoder_mismatch
    except (OSError, ValueError) as exc:  # half-broken or corrupt (CorruptVersion) version: keep the old one
        raise ApiError(409, "reload_failed", f"could not load the published version: {exc}; "
                       f"still serving {previous or 'nothing'}") from exc
    return ReloadResponse(version=holder.get().version, changed=changed, previous=previous)
