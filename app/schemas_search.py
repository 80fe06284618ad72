"""Wire models of the search routes (position, uploaded cutout, examples).

Every response keeps the shape of `/objects/{id}/similar` (`version`, `k`, `query`, `neighbours`)
so a client renders them with one code path; only `query` differs, plus `matched` for a position.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from survey.readers.fits_header import MAX_PIXEL_SCALE_ARCSEC, MIN_PIXEL_SCALE_ARCSEC

from .schemas import MAX_K, ErrorBody, NeighbourRecord, SimilarResponse

# ---- position search


class PositionMatch(BaseModel):
    """The catalogued object nearest to the requested position."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ra": 150.7397, "dec": 2.5467, "object_id": "sim-0000000", "separation_arcsec": 0.42,
         "match_radius_arcsec": 3.0}]})

    ra: float = Field(description="requested position, degrees ICRS (parsed from degrees or sexagesimal)")
    dec: float = Field(description="requested position, degrees ICRS")
    object_id: str = Field(description="the matched object (also `query`)")
    separation_arcsec: float = Field(description="distance from the requested position to the object")
    match_radius_arcsec: float


class PositionSearchResponse(SimilarResponse):
    matched: PositionMatch


# ---- uploaded cutout

UploadFormat = Literal["fits", "png", "jpeg", "npy"]


class UploadQuery(BaseModel):
    """What the service understood of an uploaded cutout, and every assumption it made."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "filename": "ngc3379.fits", "format": "fits", "bytes": 49152, "shape": [3, 64, 64],
        "bands": ["g", "r", "z"], "pixel_scale_arcsec": 0.262, "pixel_scale_source": "wcs",
        "resampled_to_arcsec": 0.262, "model_input_px": 32, "ra": 161.957, "dec": 12.5817,
        "flux": "linear", "notes": []}]})

    filename: str | None = Field(description="the name the client gave the file part")
    format: UploadFormat = Field(description="detected from the bytes, not from the name")
    bytes: int
    shape: list[int] = Field(description="(C, H, W) of the pixels as uploaded, before resampling")
    bands: list[str] = Field(description="the model's bands, in the order the planes were fed to it")
    pixel_scale_arcsec: float = Field(description="pixel scale of the upload")
    pixel_scale_source: Literal["wcs", "header", "field", "assumed"] = Field(
        description="wcs/header: read from the FITS header; field: the pixel_scale_arcsec form field; "
                    "assumed: none given, the model's pixel scale was assumed (see notes)")
    resampled_to_arcsec: float = Field(description="the model's pixel scale, which the upload was resampled to")
    model_input_px: int = Field(description="side of the centre crop the encoder sees")
    ra: float | None = Field(None, description="sky position of the upload's centre from its WCS, degrees")
    dec: float | None = None
    flux: Literal["linear", "display"] = Field(
        description="linear: pixels used as flux; display: a PNG/JPEG colour stretch, inverted (see notes)")
    notes: list[str] = Field(default_factory=list, description="assumptions and conversions, in plain words")


class UploadSearchResponse(BaseModel):
    version: str
    k: int
    query: UploadQuery
    neighbours: list[NeighbourRecord]


class CutoutSearchForm(BaseModel):
    """The non-file fields of `POST /search/cutout` (multipart/form-data)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field would otherwise be silently ignored

    pixel_scale_arcsec: float | None = Field(
        None, ge=MIN_PIXEL_SCALE_ARCSEC, le=MAX_PIXEL_SCALE_ARCSEC,
        description="arcsec per pixel of the upload; required for FITS without WCS or PIXSCALE, "
                    "assumed to be the model's for NPY/PNG/JPEG when absent")
    bands: str | None = Field(
        None, max_length=200, examples=["g,r,z"],
        description="comma-separated band names of the planes (FITS/NPY), or of R,G,B (PNG/JPEG)")
    k: int | None = Field(None, ge=1, le=MAX_K, description="number of results (default: the service's default_k)")
    z_min: float | None = Field(None, ge=0, le=20)
    z_max: float | None = Field(None, ge=0, le=20)
    mag_max: float | None = Field(None, ge=-10, le=40)


def cutout_form_openapi() -> dict[str, Any]:
    """The multipart request body for OpenAPI (the route parses the form itself, to bound its size)."""
    schema = CutoutSearchForm.model_json_schema()
    for name, prop in list(schema["properties"].items()):  # a form field is left out or has a value: no null
        alternatives = [a for a in prop.pop("anyOf", []) if a.get("type") != "null"]
        prop.pop("default", None)
        schema["properties"][name] = {**(alternatives[0] if len(alternatives) == 1 else {}), **prop}
    schema["properties"] = {"file": {"type": "string", "format": "binary", "minLength": 1,
                                     "description": "FITS (2-D or (C, H, W) cube, with WCS), PNG/JPEG, or NPY "
                                                    "(C, H, W) float array; format detected from the bytes"},
                            **schema["properties"]}
    schema["required"] = ["file"]
    schema.pop("title", None)
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": schema,
        "encoding": {"file": {"contentType": "application/fits, image/png, image/jpeg, application/octet-stream"}},
        "examples": {"fits_cube": {"summary": "a FITS cube with WCS",
                                   "value": {"file": "(binary FITS)", "k": 12}},
                     "png_with_scale": {"summary": "a PNG colour cutout at 0.262\"/px, R,G,B = z,r,g",
                                        "value": {"file": "(binary PNG)", "pixel_scale_arcsec": 0.262,
                                                  "bands": "z,r,g"}}}}}}}


# ---- examples search

ObjectIdText = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ExamplesRequest(BaseModel):
    """"More like these, less like those"."""

    # strict: JSON false is not the number 0, nor "5" the integer 5 (lax pydantic took {"mag_max": false} as 0)
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"positive": ["sim-0000042", "sim-0000107"], "negative": ["sim-0000003"], "k": 12, "z_max": 0.3}]})

    positive: list[ObjectIdText] = Field(min_length=1, max_length=100, description="object IDs to look like")
    negative: list[ObjectIdText] = Field(default_factory=list, max_length=100, description="object IDs to look unlike")
    k: int | None = Field(None, ge=1, le=MAX_K, description="number of results (default: the service's default_k)")
    z_min: float | None = Field(None, ge=0, le=20)
    z_max: float | None = Field(None, ge=0, le=20)
    mag_max: float | None = Field(None, ge=-10, le=40)

    @field_validator("k", mode="before")
    @classmethod
    def _integral_number(cls, v: object) -> object:
        """JSON Schema's integer includes 12.0 (a number with a zero fraction); 12.5 stays a 422."""
        return int(v) if isinstance(v, float) and v.is_integer() else v


class ExamplesQuery(BaseModel):
    positive: list[str]
    negative: list[str]
    negative_weight: float = Field(description="query = normalize(mean(positive) - negative_weight * mean(negative))")


class ExamplesResponse(BaseModel):
    version: str
    k: int
    query: ExamplesQuery
    neighbours: list[NeighbourRecord]


# ---- documented error responses


def error_doc(description: str, **examples: tuple[str, str]) -> dict[str, Any]:
    """An OpenAPI response entry: the ErrorBody model with one named example per error code."""
    return {"model": ErrorBody, "description": description, "content": {"application/json": {"examples": {
        name: {"value": {"error": code, "detail": detail}} for name, (code, detail) in examples.items()}}}}


INVALID = ("invalid_parameter", "k: Input should be greater than or equal to 1")
NO_INDEX = error_doc("no published version yet", no_index=("no_index", "nothing published under artifacts yet"))

POSITION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: error_doc("no catalogued object within match_radius_arcsec", no_object_in_radius=(
        "no_object_in_radius", "no catalogued object within 3 arcsec of ra=10.0000, dec=-60.0000 deg; "
                               "the nearest object, sim-0000030, is 512345.1 arcsec (142.318 deg) away")),
    422: error_doc("ra/dec not a position, or another parameter out of range", bad_dec=(
        "invalid_parameter", "dec='+95:00:00' is 95 deg, outside [-90, 90]"), bad_k=INVALID),
    503: NO_INDEX,
}

UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    409: error_doc("the version's encoder does not match its index", encoder_mismatch=(
        "encoder_mismatch", "query vector from encoder 0cd60003d356 but version ... was built with ...")),
    413: error_doc("upload or image too large", upload_too_large=(
        "upload_too_large", "the upload is larger than the limit of 20971520 bytes"), image_too_large=(
        "image_too_large", "image is 10000x10000 px; the limit is 4096 px per side"), decode_bomb=(
        "image_too_large", "upload 'bomb.png': image is 4x4096x4096 (C x H x W), 67,108,864 pixel values decoded; "
                           "the limit is 4,194,304"), too_many_hdus=(
        "too_many_hdus", "upload 'x.fits': the FITS file has more than 16 HDUs"), header_too_large=(
        "header_too_large", "upload 'x.fits': the FITS headers hold more than 5000 cards")),
    415: error_doc("not FITS, PNG, JPEG or NPY", unsupported_format=(
        "unsupported_format", "'x.gif' is a GIF image; send FITS, PNG, JPEG or NPY")),
    422: error_doc("the file cannot be read or does not fit the model", unreadable=(
        "unreadable_cutout", "upload 'x.fits': FITS file is truncated"), incompatible=(
        "incompatible_cutout", "cutout has 1 band(s) but the model takes 3 (g,r,z)"), no_scale=(
        "missing_pixel_scale", "upload 'x.fits': no celestial WCS or PIXSCALE key; send pixel_scale_arcsec"),
        mismatch=("format_mismatch", "'x.fits' is named as FITS but its bytes are PNG; send the right file"),
        conflict=("conflicting_input", "upload 'x.fits': pixel_scale_arcsec=0.5 contradicts the header's 0.262 "
                                       "arcsec/px; drop the field or fix the header"),
        invalid=INVALID),
    503: NO_INDEX,
}

EXAMPLES_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_doc("the body is not JSON (FastAPI's body parser)", bad_json=(
        "http_error", "There was an error parsing the body")),
    413: error_doc("the body is over max_body_bytes", body_too_large=(
        "body_too_large", "the request body (104857600 bytes) is larger than the limit of 1048576 bytes")),
    404: error_doc("an example ID is not in the survey", unknown_object=(
        "unknown_object", "no object with id 'nope' in this survey")),
    422: error_doc("no positive example, an ID both positive and negative, or a bad parameter", empty=(
        "invalid_parameter", "positive: List should have at least 1 item after validation, not 0"), both=(
        "invalid_parameter", "'sim-0000042' is both a positive and a negative example")),
    503: NO_INDEX,
}
