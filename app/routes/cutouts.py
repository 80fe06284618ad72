"""Cutout images: colour PNG (Lupton arcsinh stretch) and the pixels as a FITS cube with WCS."""

from __future__ import annotations

import io
from typing import Annotated

import numpy as np
from astropy.io import fits
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from indexer.store import IndexedSurvey
from survey.render import png_bytes

from ..deps import IndexDep, SettingsDep
from ..errors import ApiError
from ..schemas import ERRORS, MAX_CUTOUT_PX

router = APIRouter(prefix="/api/v1", tags=["cutouts"])

CACHE = {"Cache-Control": "public, max-age=86400"}
ObjectId = Annotated[str, Path(min_length=1, description="the survey's object ID (may contain '/')",
                               examples=["sim-0000042"])]


@router.get("/cutouts/{object_id:path}.png", response_class=Response, responses={
    **ERRORS, 200: {"content": {"image/png": {}}, "description": "colour composite"}})
def cutout_png(
    object_id: ObjectId, store: IndexDep, settings: SettingsDep,
    size: Annotated[int | None, Query(ge=8, le=MAX_CUTOUT_PX, description="output width = height in px")] = None,
    stretch: Annotated[float, Query(ge=1e-3, le=100, description="Lupton stretch, nanomaggies")] = 0.5,
    q: Annotated[float, Query(ge=0, le=100)] = 8.0,
) -> Response:
    """Colour composite (reddest band -> red) of the object's cutout, arcsinh-stretched."""
    if size is not None and size > settings.max_cutout_px:
        raise ApiError(422, "invalid_parameter", f"size={size} is above the limit of {settings.max_cutout_px} px")
    row = store.row_of(object_id)
    pixels = store.images([row])[0]
    return Response(png_bytes(pixels, store.bands, size, stretch, q, units=store.units), media_type="image/png",
                    headers=CACHE)


@router.get("/cutouts/{object_id:path}.fits", response_class=Response, responses={
    **ERRORS, 200: {"content": {"application/fits": {}},
                    "description": "FITS cube (C, H, W) float32 with a celestial TAN WCS centred on the object"}})
def cutout_fits(object_id: ObjectId, store: IndexDep) -> Response:
    """The object's pixels exactly as indexed: a (C, H, W) float32 cube in the survey's flux
    unit, with a TAN WCS whose reference pixel is the stamp centre at the object's catalog
    (ra, dec), north up and east left; band names in BANDS and BAND1..BANDn."""
    row = store.row_of(object_id)
    hdu = fits.PrimaryHDU(np.ascontiguousarray(store.images([row])[0], dtype=np.float32),
                          header=fits_header(store, row))
    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="exception")
    safe = object_id.replace("/", "_").replace('"', "_")
    return Response(buf.getvalue(), media_type="application/fits",
                    headers={**CACHE, "Content-Disposition": f'attachment; filename="{safe}.fits"'})


def fits_header(store: IndexedSurvey, row: int) -> fits.Header:
    """WCS and provenance cards for one object's stamp; shape from the manifest's image_shape."""
    rec = store.record(row)
    c, h, w = store.info.survey.image_shape or store.images([row])[0].shape
    scale_deg = store.pixel_scale_arcsec / 3600.0
    unit = ",".join(sorted({b.units for b in store.units.per_band})) if store.units else "nanomaggy"
    hdr = fits.Header()
    cards: list[tuple[str, object, str]] = [
        ("WCSAXES", 2, "celestial axes; axis 3 is the band"),
        ("CTYPE1", "RA---TAN", "gnomonic projection"), ("CTYPE2", "DEC--TAN", ""),
        ("CUNIT1", "deg", ""), ("CUNIT2", "deg", ""),
        ("CRVAL1", float(rec["ra"]), "[deg] object RA (catalog, ICRS)"),
        ("CRVAL2", float(rec["dec"]), "[deg] object Dec (catalog, ICRS)"),
        ("CRPIX1", (w + 1) / 2.0, "stamp centre (1-based)"), ("CRPIX2", (h + 1) / 2.0, "stamp centre (1-based)"),
        ("CDELT1", -scale_deg, "[deg/px] east left"), ("CDELT2", scale_deg, "[deg/px] north up"),
        ("RADESYS", "ICRS", ""),
        ("BUNIT", unit, "pixel units (survey units record)"),
        ("PIXSCALE", store.pixel_scale_arcsec, "[arcsec/px]"),
        ("OBJECT", _ascii(str(rec["object_id"])), "survey object id"),
        ("BANDS", ",".join(store.bands), "band of each plane, axis 3 order"),
    ]
    cards += [(f"BAND{i + 1}", b, f"band of plane {i + 1}") for i, b in enumerate(store.bands)]
    cards += [("SURVEY", _ascii(store.info.survey.name), ""),
              ("SKYVER", store.version, "skysift index version"),
              ("ORIGIN", "skysift", "")]
    positioned = bool(np.isfinite(rec["ra"]) and np.isfinite(rec["dec"]))
    if not positioned:  # FITS has no NaN card values; a celestial WCS without a centre would lie
        cards = [c for c in cards if c[0] not in _CELESTIAL_KEYS]
    for key, value, comment in cards:
        hdr[key] = (value, comment)
    if not positioned:
        hdr.add_comment("Sky position unknown (ingested without ra/dec): no celestial WCS.")
    hdr.add_comment("Pixels as indexed by skysift; NaN marks pixels without data.")
    if store.units is None:
        hdr.add_comment("BUNIT assumed (the version's manifest records no units).")
    return hdr


_CELESTIAL_KEYS = {"WCSAXES", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2",
                   "CDELT1", "CDELT2", "RADESYS"}


def _ascii(text: str) -> str:
    """FITS headers hold printable ASCII only."""
    return text.encode("ascii", "backslashreplace").decode("ascii")
