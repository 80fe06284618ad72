"""The one place domain exceptions become HTTP answers: JSON {"error": code, "detail": sentence}.

That holds for unexpected exceptions too: a 500 is `internal_error` naming the request id (also in
its X-Request-ID header), and the traceback is logged on `skysift.errors` with the same id, so a
user's report can be matched to the log line without showing internals to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from encoder.errors import IncompatibleInput
from encoder.upload import (
    BadField,
    ConflictingInput,
    EmptyImage,
    EmptyUpload,
    FormatMismatch,
    HeaderTooLarge,
    ImageTooLarge,
    MissingPixelScale,
    TooManyHdus,
    UnsupportedArray,
    UnsupportedFormat,
    UploadError,
)
from indexer.errors import ArtifactMismatch, CorruptVersion, NoCurrentVersion
from survey.errors import CatalogError, UnknownObject, UnreadableCutout

from .middleware import REQUEST_ID_HEADER, BodyTooLarge, request_id_of
from .uploads import BadForm, NotMultipart, UploadTooLarge

log = logging.getLogger("skysift.errors")

# Exceptions whose message is the answer's detail, by status: {status: {exception: error code}}. A
# subclass's own entry wins over its base's (Starlette looks the handler up along the exception's
# MRO): NotMultipart is a BadForm, and every upload error an UploadError.
STATUS_CODES: dict[int, dict[type[Exception], str]] = {
    400: {CatalogError: "bad_catalog"},
    409: {ArtifactMismatch: "encoder_mismatch"},
    413: {UploadTooLarge: "upload_too_large", ImageTooLarge: "image_too_large", TooManyHdus: "too_many_hdus",
          HeaderTooLarge: "header_too_large"},
    415: {UnsupportedFormat: "unsupported_format", NotMultipart: "unsupported_media_type"},
    422: {IncompatibleInput: "incompatible_cutout", UnreadableCutout: "unreadable_cutout",
          FormatMismatch: "format_mismatch", EmptyUpload: "empty_upload", EmptyImage: "empty_image",
          MissingPixelScale: "missing_pixel_scale", ConflictingInput: "conflicting_input",
          BadField: "invalid_parameter", UnsupportedArray: "unsupported_array", BadForm: "bad_form",
          UploadError: "bad_upload"},
    503: {CorruptVersion: "corrupt_index", NoCurrentVersion: "no_index"},
}


class ApiError(Exception):
    """Raised by routes for request problems that no domain exception names."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}
        super().__init__(detail)


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail})


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
        parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.detail)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(UnknownObject)
    async def _unknown(_: Request, exc: UnknownObject) -> JSONResponse:
        return error_response(404, "unknown_object", f"no object with id {exc.object_id!r} in this survey")

    for status, codes in STATUS_CODES.items():
        for exc_class, code in codes.items():
            app.add_exception_handler(exc_class, _answer_with(status, code))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_parameter", _validation_detail(exc))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, exc.code, str(exc.detail))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; see /docs for the API"
        if exc.status_code == 405:  # RFC 9110 §15.5.6: a 405 lists the methods the resource has
            allowed = allowed_methods(request) or headers.get("Allow", "")
            headers["Allow"] = allowed
            detail = f"{request.method} is not allowed here; the methods of {request.url.path} are {allowed}"
        response = error_response(exc.status_code, code, detail)
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette calls this from its outermost ServerErrorMiddleware, then re-raises exc so the
        # server logs it too; the line below is the one that carries the request id.
        rid = request_id_of(request.scope) or "none"
        log.error("request %s %s %s failed: %s: %s", rid, request.method, request.url.path, type(exc).__name__, exc,
                  exc_info=exc)
        response = error_response(500, "internal_error", f"unexpected server error; the service log has the "
                                                         f"details under request id {rid}")
        response.headers[REQUEST_ID_HEADER] = rid
        return response


def _answer_with(status: int, code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return error_response(status, code, str(exc))

    return handler


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method some route answers at this path, HEAD with GET (app.middleware.HeadAsGet).

    Starlette's own Allow names only the first route whose path matched (GET /votes hid POST
    /votes), so each route is asked again, once per method, whether it would take this path.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Mount):  # the static files: a mount takes every method, StaticFiles GET/HEAD
            if request.url.path.startswith(route.path + "/"):
                methods |= {"GET", "HEAD"}
            continue
        methods |= {m for m in _METHODS if route.matches({**request.scope, "method": m})[0] == Match.FULL}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


class Unauthorized(ApiError):
    """A protected route was called without valid credentials: 401 with a Bearer challenge."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", detail, {"WWW-Authenticate": 'Bearer realm="skysift"'})  # RFC 6750 §3
