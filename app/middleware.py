"""The service's ASGI wrappers: what every request goes through, whichever route answers it.

Pure ASGI classes rather than Starlette's `@app.middleware("http")` (BaseHTTPMiddleware), which
runs each request in a task group with memory streams between the layers; wrapping `send` does
the same job for ~0.4 ms less CPU per request, which is most of the service's overhead over a
bare index search.

  AccessLog   a request id for every request (the client's X-Request-ID if it is a plain token,
              else a new one), returned in the X-Request-ID header and written in the access
              log line `METHOD path status latency id=...`; app/errors.py puts it in the log
              line of an unexpected error and in the header of its 500.
  LimitBodies every request body within a byte limit (per path, else the default): a declared
              Content-Length over it is refused on the first read, before a byte is awaited; a
              chunked body, or one longer than it declared, as soon as it passes the limit. The
              refusal is BodyTooLarge, an HTTPException (FastAPI re-raises those from its body
              reader instead of turning them into 400), answered as 413 by app/errors.py.
  HeadAsGet   HEAD is answered as GET without the body (RFC 9110 §9.3.2): FastAPI routes are GET
              only, so HEAD / was a 405. The routes stay GET in the OpenAPI document.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("skysift.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only if it cannot forge log lines or headers (no spaces, no control characters).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(scope: Scope) -> str | None:
    """The id AccessLog gave this request (None outside it, e.g. in a test that calls a route directly)."""
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


def _new_request_id(scope: Scope) -> str:
    sent = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
    return sent if _CLIENT_ID.fullmatch(sent) else uuid.uuid4().hex


class AccessLog:
    """Give the request an id, return it as X-Request-ID, log method, path, status, latency and id.

    The id lives in `scope["state"]` (Starlette's `request.state`), which the server makes per
    request; the scope dict is the one the outer ServerErrorMiddleware holds too, so its handler
    of unexpected errors finds the id there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = _new_request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # what the client sees if the app raises before starting a response
        header = (REQUEST_ID_HEADER.lower().encode(), rid.encode())

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            log.info("%s %s %d %.1fms id=%s", scope["method"], scope["path"], status,
                     (time.perf_counter() - t0) * 1000, rid)


@dataclass(frozen=True)
class BodyLimit:
    """At most `max_bytes` of request body; the 413's error code and what the body is called."""

    max_bytes: int
    code: str = "body_too_large"
    what: str = "request body"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: BodyLimit, detail: str) -> None:
        super().__init__(413, detail)
        self.code = limit.code


class LimitBodies:
    """Refuse request bodies over their path's BodyLimit (`default` for paths not in `per_path`),
    reading no more than the limit plus one network chunk."""

    def __init__(self, app: ASGIApp, default: BodyLimit, per_path: Mapping[str, BodyLimit]) -> None:
        self.app, self.default, self.per_path = app, default, dict(per_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = _content_length(scope)
        seen = 0

        async def receive_within_limit() -> Message:
            nonlocal seen
            if declared is not None and declared > limit.max_bytes:  # refused before awaiting any of it
                raise BodyTooLarge(limit, f"the {limit.what} ({declared} bytes) is larger than the limit of "
                                          f"{limit.max_bytes} bytes")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit.max_bytes:
                    raise BodyTooLarge(limit, f"the {limit.what} is larger than the limit of {limit.max_bytes} "
                                              f"bytes (stopped reading at {seen} bytes)")
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent or not a number (the server refuses those itself)."""
    raw = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class HeadAsGet:
    """Run a HEAD request as GET and send its status and headers (Content-Length included), no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
            elif message["type"] == "http.response.pathsend":  # a file the server would send itself
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)  # the same state dict
