"""Search: by sky position, by an uploaded cutout, and by positive/negative example objects.

All three answer in the shape of `/objects/{id}/similar`: `version`, `k`, `query`, `neighbours`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from encoder.errors import WeightsError
from encoder.upload import (
    EmptyUpload,
    decode_upload,
    parse_bands,
    to_model_grid,
)
from encoder.upload_limits import DecodeLimits
from indexer.store import Filters, IndexedSurvey
from survey.errors import UnknownObject

from .. import uploads
from ..deps import DecodeSlotsDep, IndexDep, SettingsDep
from ..errors import ApiError
from ..formats import Format, FormatQuery, list_responses
from ..schemas import MAX_K, ObjectRecord
from ..schemas_search import (
    EXAMPLES_ERRORS,
    POSITION_ERRORS,
    UPLOAD_ERRORS,
    CutoutSearchForm,
    ExamplesQuery,
    ExamplesRequest,
    ExamplesResponse,
    PositionMatch,
    PositionSearchResponse,
    UploadQuery,
    UploadSearchResponse,
    cutout_form_openapi,
)
from .objects import make_filters, neighbour_records, neighbour_table

router = APIRouter(prefix="/api/v1", tags=["search"])

NEGATIVE_WEIGHT = 0.5  # Rocchio-style relevance feedback: positives weigh 1, negatives 0.5
DEFAULT_MATCH_RADIUS_ARCSEC = 3.0  # ~ a seeing disc and a half; catalog positions of one galaxy agree to < 1"

# ---- position

# The forms parse_angle reads, as the patterns the OpenAPI document gives ra and dec, within range
# by construction (hours 0-23, minutes and seconds 0-59, degrees 0-359.x for ra, -90..90 for dec; a
# decimal's exponent only negative, as Python prints small floats): a request matching them is a
# position, so only an unmatched value is 422.
_MS = r"[0-5]?[0-9]"
_SEC = r"[0-5]?[0-9](?:\.[0-9]*)?"
_EXP = r"(?:[eE]-[0-9]{1,3})?"
_H = r"(?:[01]?[0-9]|2[0-3])"
_D = r"[0-8]?[0-9]"
RA_PATTERN = (rf"^(?:\+?(?:[0-9]{{1,2}}|[12][0-9]{{2}}|3[0-5][0-9])(?:\.[0-9]*)?{_EXP}"
              rf"|{_H}(?::{_MS}(?::{_SEC})?| {_MS}(?: {_SEC})?)"
              rf"|{_H}h{_MS}m(?:{_SEC}s)?)$")
DEC_PATTERN = (rf"^[+-]?(?:{_D}(?:\.[0-9]*)?{_EXP}|90(?:\.0*)?"
               rf"|{_D}(?::{_MS}(?::{_SEC})?| {_MS}(?: {_SEC})?)|90(?::00?(?::00?(?:\.0*)?)?| 00?(?: 00?(?:\.0*)?)?)"
               rf"|{_D}d{_MS}m(?:{_SEC}s)?)$")


def parse_angle(name: str, text: str) -> float:
    """Degrees from '150.25', '10:01:00.5' / '10 01 00.5' (hours for ra, degrees for dec),
    '10h01m00.5s' or '+02d30m00s'; ApiError 422 naming the parameter otherwise."""
    s = text.strip()
    is_ra = name == "ra"
    try:
        value = float(s)
    except ValueError:
        try:
            if any(c in s.lower() for c in "hdms°'\""):  # the string carries its own unit
                angle = Angle(s)
                if not is_ra and angle.unit == u.hourangle:
                    raise ValueError("dec is in degrees, not hours")
            else:
                angle = Angle(s, unit=u.hourangle if is_ra else u.deg)
            value = float(angle.deg)
        except (ValueError, u.UnitsError) as e:
            form = "'10:21:34.5' (hours)" if is_ra else "'+02:30:00' (degrees)"
            raise ApiError(422, "invalid_parameter", f"{name}={text!r} is not an angle ({e}); give degrees "
                                                     f"like 150.25 or sexagesimal like {form}") from None
    lo, hi = (0.0, 360.0) if is_ra else (-90.0, 90.0)
    pattern = RA_PATTERN if is_ra else DEC_PATTERN
    if is_ra and value == hi and re.fullmatch(pattern, text):  # '359.99999999999999999' rounds to 360: RA 0
        value = 0.0
    if not math.isfinite(value) or value < lo or value > hi or (is_ra and value == hi):
        bounds = "[0, 360)" if is_ra else "[-90, 90]"
        raise ApiError(422, "invalid_parameter", f"{name}={text!r} is {value:g} deg, outside {bounds}")
    if not re.fullmatch(pattern, text):  # an angle, but not in a documented form (' 150', '1e2', '0150')
        form = "'10:21:34.5' (hours)" if is_ra else "'+02:30:00' (degrees)"
        raise ApiError(422, "invalid_parameter", f"{name}={text!r} is not in a form this service reads; give "
                                                 f"degrees like 150.25 or sexagesimal like {form}")
    return value


def _arcsec(sep: float) -> str:
    return f"{sep:.1f} arcsec" + (f" ({sep / 3600:.3f} deg)" if sep >= 3600 else "")


def respond(store: IndexedSurvey, body: PositionSearchResponse | UploadSearchResponse | ExamplesResponse,
            fmt: Format, name: str, description: str, infos: dict[str, Any]) -> Any:
    """The search's JSON model, or its neighbours as csv/votable (`format`), like /similar."""
    if fmt == "json":
        return body
    rows = [n.model_dump() for n in body.neighbours]
    return neighbour_table(store, fmt, rows, name=name, description=description, infos={"k": body.k, **infos})


@router.get("/search/position", response_model=PositionSearchResponse,
            responses={**POSITION_ERRORS, **list_responses("the matched object's most similar objects")})
def search_position(
    store: IndexDep, settings: SettingsDep,
    ra: Annotated[str, Query(min_length=1, max_length=40, json_schema_extra={"pattern": RA_PATTERN},
                             description="right ascension: degrees, or sexagesimal "
                             "hours ('10:02:57.5', '10 02 57.5', '10h02m57.5s')", openapi_examples={
                                 "degrees": {"value": "150.7397"}, "sexagesimal": {"value": "10:02:57.52"},
                                 "hms": {"value": "10h02m57.52s"}})],
    dec: Annotated[str, Query(min_length=1, max_length=40, json_schema_extra={"pattern": DEC_PATTERN},
                              description="declination: degrees, or sexagesimal "
                              "degrees ('+02:32:48.2', '+02d32m48.2s')", openapi_examples={
                                  "degrees": {"value": "2.5467"}, "sexagesimal": {"value": "+02:32:48.2"}})],
    match_radius_arcsec: Annotated[float, Query(gt=0, le=3600, description="how far the nearest catalogued "
                                                "object may be from the position")] = DEFAULT_MATCH_RADIUS_ARCSEC,
    k: Annotated[int | None, Query(ge=1, le=MAX_K, description="number of results (default: the service's "
                                                                  "default_k)")] = None,
    z_min: Annotated[float | None, Query(ge=0, le=20)] = None,
    z_max: Annotated[float | None, Query(ge=0, le=20)] = None,
    mag_max: Annotated[float | None, Query(ge=-10, le=40)] = None,
    fmt: FormatQuery = "json",
) -> Any:
    """The catalogued object nearest to (ra, dec), if within `match_radius_arcsec`, and its most
    similar objects, as `/objects/{id}/similar`; `matched` tells how far the object is. 404
    `no_object_in_radius` names the nearest object and its distance otherwise."""
    ra_deg, dec_deg = parse_angle("ra", ra), parse_angle("dec", dec)
    k, filters = make_filters(k, z_min, z_max, mag_max, settings.default_k, settings.max_k)
    try:
        row, sep = store.nearest_object(ra_deg, dec_deg)
    except UnknownObject:  # not the id-lookup 404: nothing in this survey has a position to match
        raise ApiError(404, "no_object_in_radius", "no object of this survey has a known sky position "
                                                   "(it was ingested without ra/dec); search by object id") from None
    oid = str(store.catalog["object_id"][row])
    if sep > match_radius_arcsec:
        raise ApiError(404, "no_object_in_radius",
                       f"no catalogued object within {match_radius_arcsec:g} arcsec of ra={ra_deg:.5f}, "
                       f"dec={dec_deg:.5f} deg; the nearest object, {oid}, is {_arcsec(sep)} away")
    hits = store.similar(oid, k, filters)
    body = PositionSearchResponse(
        version=store.version, k=k, query=ObjectRecord.from_record(store.record(row)),
        neighbours=neighbour_records(store, hits),
        matched=PositionMatch(ra=ra_deg, dec=dec_deg, object_id=oid, separation_arcsec=sep,
                              match_radius_arcsec=match_radius_arcsec))
    return respond(store, body, fmt, f"position-{row}", f"objects most similar to {oid}, the object nearest to "
                   f"ra={ra_deg:.5f}, dec={dec_deg:.5f}", {"query_object_id": oid, "ra": ra_deg, "dec": dec_deg,
                                                          "separation_arcsec": sep})


# ---- uploaded cutout


async def read_upload_form(request: Request, max_upload_bytes: int) -> tuple[dict[str, str], str | None, bytes]:
    """(text fields, file name, file bytes) of a multipart body. The body as a whole is bounded by
    app.middleware.LimitBodies (uploads.body_limit for this path); the file part by max_upload_bytes."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise uploads.NotMultipart(f"expected a multipart/form-data body with a 'file' part, got "
                                   f"{request.headers.get('content-type') or 'no Content-Type'}")
    parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=20)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise uploads.BadForm(f"malformed multipart body: {e.message}") from e
    try:
        files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
        fields: dict[str, str] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in fields:
                    raise uploads.BadForm(f"field {key!r} is given twice")
                if value.strip():  # an empty form input means "not given"
                    fields[key] = value
        if not files:
            hint = " (it came as text: send it as a file part)" if "file" in fields else ""
            raise EmptyUpload(f"no 'file' part in the form{hint}; send the cutout as multipart field 'file'")
        name, upload = files[0]
        if name != "file":
            raise uploads.BadForm(f"the file part is named {name!r}; name it 'file'")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise uploads.UploadTooLarge(f"the file is larger than the limit of {max_upload_bytes} bytes")
        fields.pop("file", None)
        return fields, upload.filename, data
    finally:
        await form.close()


def _search_upload(store: IndexedSurvey, data: bytes, filename: str | None, form: CutoutSearchForm, k: int,
                   filters: Filters, limits: DecodeLimits) -> UploadSearchResponse:
    encoder, card = uploads.encoder_for(store)
    where = f"upload {filename!r}" if filename else "upload"
    up = decode_upload(data, filename, card, pixel_scale_arcsec=form.pixel_scale_arcsec,
                       bands=parse_bands(form.bands), limits=limits,
                       units=store.units, source_scale=store.source_pixel_scale_arcsec)
    pixels = to_model_grid(up, card, uploads.stamp_size(store, card), where)
    hits = store.search_vector(uploads.embed_upload(encoder, card, pixels), k, filters)
    query = UploadQuery(
        filename=filename, format=up.format, bytes=len(data), shape=list(up.shape), bands=list(up.bands),
        pixel_scale_arcsec=up.pixel_scale_arcsec, pixel_scale_source=up.pixel_scale_source,
        resampled_to_arcsec=card.preprocess.pixel_scale_arcsec, model_input_px=card.preprocess.input_size_px,
        ra=up.ra_deg, dec=up.dec_deg, flux=up.flux, notes=up.notes)
    return UploadSearchResponse(version=store.version, k=k, query=query, neighbours=neighbour_records(store, hits))


CUTOUT_PATH = f"{router.prefix}/search/cutout"  # app/main.py gives this path the upload body limit


@router.post("/search/cutout", response_model=UploadSearchResponse,
             responses={**UPLOAD_ERRORS, **list_responses("the objects most similar to the upload")},
             openapi_extra=cutout_form_openapi())
async def search_cutout(request: Request, store: IndexDep, settings: SettingsDep, slots: DecodeSlotsDep,
                        fmt: FormatQuery = "json") -> Any:
    """The objects most similar to an uploaded cutout (multipart/form-data, field `file`).

    FITS (2-D or (C, H, W) with a celestial WCS or PIXSCALE), PNG/JPEG (a Lupton arcsinh colour
    composite like `/cutouts/{id}.png`; R,G,B = reddest..bluest band) or NPY ((C, H, W) floats).
    The upload is resampled to the model's pixel scale, centred on the model's input, and embedded
    with the encoder that built the served version. `query.notes` lists every assumption made.
    At most `max_upload_bytes` (413 `upload_too_large`), and, read from the file's header before
    decoding, `max_upload_side_px` per side and `max_upload_decoded_px` pixel values (C x H x W;
    413 `image_too_large`). At most `max_concurrent_decodes` uploads decode at once; others wait.
    """
    try:
        fields, filename, data = await read_upload_form(request, settings.max_upload_bytes)
        try:
            form = CutoutSearchForm.model_validate(fields)
        except ValidationError as e:
            raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None
        k, filters = make_filters(form.k, form.z_min, form.z_max, form.mag_max, settings.default_k, settings.max_k)
        limits = DecodeLimits(settings.max_upload_side_px, settings.max_upload_decoded_px,
                              settings.max_upload_fits_hdus, settings.max_upload_fits_cards)
        async with slots:  # at most settings.max_concurrent_decodes decode (and embed) at once
            body = await run_in_threadpool(_search_upload, store, data, filename, form, k, filters, limits)
    except WeightsError as e:
        raise ApiError(503, "encoder_unavailable", f"version {store.version}: its encoder cannot be loaded: {e}") from e
    q = body.query
    return respond(store, body, fmt, "upload", f"objects most similar to the upload {q.filename or ''}".strip(),
                   {"upload_format": q.format, "shape": "x".join(map(str, q.shape)),
                    "pixel_scale_arcsec": q.pixel_scale_arcsec, "flux": q.flux,
                    **{f"note_{i + 1}": n for i, n in enumerate(q.notes)}})


# ---- examples


def _mean_vector(store: IndexedSurvey, rows: list[int]) -> np.ndarray:
    return np.mean([store.vector(r) for r in rows], axis=0)


@router.post("/search/examples", response_model=ExamplesResponse,
             responses={**EXAMPLES_ERRORS, **list_responses("the objects most like the examples")})
def search_examples(body: ExamplesRequest, store: IndexDep, settings: SettingsDep, fmt: FormatQuery = "json") -> Any:
    """"More like these, less like those": objects near
    `normalize(mean(positive) - 0.5 * mean(negative))` of the unit embeddings (Rocchio relevance
    feedback; negatives count half so that they steer the query without flipping it). The
    examples themselves are left out of the results."""
    k, filters = make_filters(body.k, body.z_min, body.z_max, body.mag_max, settings.default_k, settings.max_k)
    positive, negative = list(dict.fromkeys(body.positive)), list(dict.fromkeys(body.negative))
    both = [oid for oid in positive if oid in set(negative)]
    if both:
        raise ApiError(422, "invalid_parameter", f"{', '.join(map(repr, both[:5]))} "
                                                 f"{'is' if len(both) == 1 else 'are'} both a positive and a negative "
                                                 f"example")
    pos_rows = [store.row_of(oid) for oid in positive]  # UnknownObject -> 404 naming the id
    neg_rows = [store.row_of(oid) for oid in negative]
    query = _mean_vector(store, pos_rows)
    if neg_rows:
        query = query - NEGATIVE_WEIGHT * _mean_vector(store, neg_rows)
    norm = float(np.linalg.norm(query))
    if norm < 1e-6:
        raise ApiError(422, "invalid_parameter", "the positive and negative examples cancel out: nothing is left "
                                                 "to search for; drop some negatives")
    hits = store.search_vector(query / norm, k, filters, exclude=set(pos_rows) | set(neg_rows))
    answer = ExamplesResponse(version=store.version, k=k,
                              query=ExamplesQuery(positive=positive, negative=negative,
                                                  negative_weight=NEGATIVE_WEIGHT),
                              neighbours=neighbour_records(store, hits))
    return respond(store, answer, fmt, "examples", "objects most like the positive examples, least like the negative",
                   {"positive": ",".join(positive), "negative": ",".join(negative),
                    "negative_weight": NEGATIVE_WEIGHT})

