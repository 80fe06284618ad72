"""Cutout images: colour PNG (Lupton arcsinh stretch)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from survey.render import png_bytes

from ..deps import IndexDep, SettingsDep
from ..errors import ApiError
from ..schemas import ERRORS

router = APIRouter(prefix="/api/v1", tags=["cutouts"])

CACHE = {"Cache-Control": "public, max-age=86400"}


@router.get("/cutouts/{object_id:path}.png", response_class=Response, responses={
    **ERRORS, 200: {"content": {"image/png": {}}, "description": "colour composite"}})
def cutout_png(
    object_id: Annotated[str, Path(min_length=1, examples=["sim-0000042"])], store: IndexDep, settings: SettingsDep,
    size: Annotated[int | None, Query(ge=8, description="output width = height in px")] = None,
    stretch: Annotated[float, Query(gt=0, le=100)] = 0.5,
    q: Annotated[float, Query(ge=0, le=100)] = 8.0,
) -> Response:
    """Colour composite (reddest band -> red) of the object's cutout, arcsinh-stretched."""
    if size is not None and size > settings.max_cutout_px:
        raise ApiError(422, "invalid_parameter", f"size={size} is above the limit of {settings.max_cutout_px} px")
    row = store.row_of(object_id)
    pixels = store.images([row])[0]
    return Response(png_bytes(pixels, store.bands, size, stretch, q), media_type="image/png", headers=CACHE)
