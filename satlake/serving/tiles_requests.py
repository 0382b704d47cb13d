"""What a tile request may ask, and how its faults are answered: bounds checked before anything is read, and a
route class that turns validation and rio-tiler errors into JSON bodies naming the parameter (400) rather than
titiler's 422 or a 500, whatever application mounts the router."""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from rasterio.errors import RasterioIOError
from rio_tiler.errors import (
    AssetAsBandError,
    InvalidAssetName,
    InvalidBandName,
    InvalidBufferSize,
    InvalidColorFormat,
    InvalidExpression,
    InvalidFormat,
    MaxArraySizeError,
    MissingAssets,
    MissingBands,
    PointOutsideBounds,
    TileOutsideBounds,
)

from satlake.serving.tiles_renders import TileRequestError

logger = logging.getLogger(__name__)

# The largest image a request may ask for, per parameter (pixels): a tile of 20000 pixels a side or a preview of
# 30000 would hold a worker for minutes. Buffer and padding add pixels on each side of a tile.
IMAGE_SIZE_LIMITS: dict[str, int] = {
    "tilesize": 1024,
    "max_size": 4096,
    "width": 4096,
    "height": 4096,
    "buffer": 64,
    "padding": 64,
}

# Ranges of numeric parameters outside which titiler's libraries fail rather than answer (path or query).
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "z": (0, 30),
    "x": (0, 2**30),
    "y": (0, 2**30),
    "lon": (-180, 180),
    "lat": (-90, 90),
    "p": (0, 100),  # statistics percentiles
}

# rio-tiler's errors that a request's own parameters cause, and the parameter each names: answered with a 400.
BAD_REQUEST_ERRORS: dict[type[Exception], str] = {
    InvalidExpression: "expression",
    InvalidBufferSize: "buffer",
    MaxArraySizeError: "max_size",
    InvalidFormat: "format",
    InvalidColorFormat: "colormap",
    AssetAsBandError: "assets",
    InvalidAssetName: "assets",
    InvalidBandName: "assets",
    MissingAssets: "assets",
    MissingBands: "assets",
}

# Answered with a 404: the place asked for is not in the item.
OUTSIDE_ERRORS = (TileOutsideBounds, PointOutsideBounds)


def _numbers(request: Request, name: str) -> list[float]:
    values = request.query_params.getlist(name) or ([request.path_params[name]] if name in request.path_params else [])
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            continue  # not a number: titiler's own validation answers, naming the parameter
    return numbers


def check_request_bounds(request: Request) -> None:
    """Refuse, before anything is read, an image larger than :data:`IMAGE_SIZE_LIMITS` or a number outside
    :data:`PARAMETER_RANGES`."""
    for name, limit in IMAGE_SIZE_LIMITS.items():
        for value in _numbers(request, name):
            if value > limit:
                raise TileRequestError(name, f"{value:g} is more than the {limit} pixels allowed; ask for less")
    for name, (low, high) in PARAMETER_RANGES.items():
        if name in ("lon", "lat") and "coord_crs" in request.query_params:
            continue  # coordinates in another CRS
        for value in _numbers(request, name):
            if not low <= value <= high:
                raise TileRequestError(name, f"{value:g} is outside {low:g}..{high:g}")


def _error_response(status: int, parameter: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"code": "BadRequest", "parameter": parameter, "detail": message})


class TileErrorRoute(APIRoute):
    """An APIRoute answering a request's own faults as JSON: 400 naming the parameter, 404 outside the item, and
    a 500 that says what to check when an asset cannot be read. Other errors (the caller's HTTPExceptions, such
    as get_item's 401/403/404) pass through unchanged."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                location = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
                parameter = ".".join(location) or "request"
                return _error_response(400, parameter, f"{parameter}: {first.get('msg', 'invalid value')}")
            except TileRequestError as error:
                return _error_response(400, error.parameter, str(error))
            except tuple(BAD_REQUEST_ERRORS) as error:
                parameter = next(name for kind, name in BAD_REQUEST_ERRORS.items() if isinstance(error, kind))
                return _error_response(400, parameter, f"{parameter}: {error}")
            except OUTSIDE_ERRORS as error:
                return JSONResponse(status_code=404, content={"code": type(error).__name__, "detail": str(error)})
            except RasterioIOError as error:
                logger.error("tiles: %s %s could not read an asset: %s", request.method, request.url.path, error)
                detail = (
                    f"an asset of this item could not be read ({error}); check that its object exists and, in "
                    "stack mode, that MinIO runs (`satlake stack status`) and SATLAKE_S3_* are right"
                )
                return JSONResponse(status_code=500, content={"code": "AssetUnreadable", "detail": detail})

        return handle
