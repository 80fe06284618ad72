"""Typed dependencies, so handler signatures read in domain terms.

Both are `async`: FastAPI runs every sync dependency in a worker thread, and these are attribute
reads once the service has loaded a version, so a thread hop would cost more than the work. The
one slow case, the first load of a version, goes to the thread pool.
"""

from __future__ import annotations

import asyncio
import difflib
import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from indexer.store import IndexedSurvey

from .errors import ApiError, Unauthorized
from .holder import IndexHolder
from .settings import ServiceSettings


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_index(request: Request) -> IndexedSurvey:
    holder: IndexHolder = request.app.state.holder
    if holder.loaded:
        return holder.get()
    return await run_in_threadpool(holder.get)


async def get_decode_slots(request: Request) -> asyncio.Semaphore:
    """The app's bound on uploads decoding at once (ServiceSettings.max_concurrent_decodes)."""
    return request.app.state.decode_slots


# A route whose openapi_extra holds this key ignores query parameters it does not know (the IVOA cone
# search: SCS clients send their own, e.g. RUNID and RESPONSEFORMAT).
IGNORES_UNKNOWN_QUERY = "x-unknown-query-parameters"


def _query_names(dependant: Any) -> set[str]:
    """Query parameter names of a route's handler and of every dependency it has (by alias)."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """An app-wide dependency: a query parameter the route does not declare is a 422 naming it and
    the accepted ones (a mistyped `zmax=0.1` used to answer the unfiltered search). Routes outside
    the API document (the page, whose address carries its own state) are left alone."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema or not request.url.query:
        return
    if IGNORES_UNKNOWN_QUERY in (route.openapi_extra or {}):
        return
    accepted = _query_names(route.dependant)  # a few set unions: cheaper than a cache keyed by route
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in accepted]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, sorted(accepted), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        takes = ", ".join(sorted(accepted)) or "no query parameters"
        raise ApiError(422, "invalid_parameter", f"unknown query parameter {name!r}{hint}; "
                                                 f"{request.method} {route.path} takes {takes}")


bearer = HTTPBearer(auto_error=False, description="ServiceSettings.admin_token or write_token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_bearer(expected: str, credentials: HTTPAuthorizationCredentials | None, what: str) -> None:
    """401 unless the request carries 'Authorization: Bearer <expected>' (compared in constant time)."""
    if credentials is None:
        raise Unauthorized(f"missing 'Authorization: Bearer <{what}>' header")
    if not hmac.compare_digest(credentials.credentials.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape")):
        raise Unauthorized(f"wrong {what}")


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
IndexDep = Annotated[IndexedSurvey, Depends(get_index)]
DecodeSlotsDep = Annotated[asyncio.Semaphore, Depends(get_decode_slots)]
