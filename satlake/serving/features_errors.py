"""Bad input to the tipg app is a 400 with a JSON body naming the parameter, never a 500: tipg's bbox,
datetime, filter, tile and collection parameters checked up front with the parsers tipg uses, and the errors
PostgreSQL raises for a value a user sent (an unknown column in a filter, text where a number goes) mapped to
400 as well."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from ciso8601 import parse_rfc3339
from cql2 import Expr
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from morecantile import Tile
from tipg.collections import Collection
from tipg.dependencies import CollectionParams, TileParams, bbox_query, datetime_query, filter_query
from tipg.errors import InvalidBBox, InvalidDatetime, InvalidLimit, InvalidPropertyName, TiPgError

OPEN_END = ("..", "")
MAX_ZOOM = 24  # the deepest tile matrix of WebMercatorQuad, the tiles' default grid


class InvalidParameter(TiPgError):
    """A query parameter whose value cannot be used; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


# tipg's own errors of user input, and the parameter each one is about.
TIPG_INPUT_ERRORS: dict[type[Exception], str] = {
    InvalidBBox: "bbox",
    InvalidDatetime: "datetime",
    InvalidLimit: "limit",
    InvalidPropertyName: "properties",
}


def _refuse(parameter: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=400, content={"code": "InvalidParameter", "parameter": parameter, "description": message}
    )


def strict_bbox_query(bbox: Annotated[str | None, Query(description="Spatial Filter.")] = None) -> list[float] | None:
    """tipg's bbox, with text that is not numbers refused (tipg would answer 500)."""
    if bbox:
        try:
            [float(value) for value in bbox.split(",")]
        except ValueError:
            raise InvalidParameter("bbox", f"bbox={bbox!r} must be 4 or 6 comma-separated numbers") from None
    return bbox_query(bbox)


def strict_datetime_query(
    datetime: Annotated[str | None, Query(description="Temporal Filter.")] = None,
) -> list[str] | None:
    """tipg's datetime, each end checked as RFC 3339 now (tipg parses it later and would answer 500)."""
    if datetime and datetime.count("/") > 1:
        raise InvalidParameter("datetime", f"datetime={datetime!r} is one instant or one start/end interval")
    interval = datetime_query(datetime)
    for end in interval or []:
        if end in OPEN_END:
            continue
        try:
            parse_rfc3339(end)
        except ValueError as error:
            raise InvalidParameter(
                "datetime", f"datetime={datetime!r}: {end!r} is not RFC 3339 ({error}); use e.g. 2024-05-01T00:00:00Z"
            ) from None
    return interval


def strict_tile_params(
    z: Annotated[int, Path(description="Zoom level of the tile.")],
    x: Annotated[int, Path(description="Column of the tile.")],
    y: Annotated[int, Path(description="Row of the tile.")],
) -> Tile:
    """tipg's tile indices, with a zoom beyond the deepest tile matrix refused (PostGIS would fail on it)."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidParameter("z", f"z={z} must be between 0 and {MAX_ZOOM}")
    for name, value in (("x", x), ("y", y)):
        if value < 0:
            raise InvalidParameter(name, f"{name}={value} must not be negative")
    return TileParams(z=z, x=x, y=y)


def strict_collection_params(
    request: Request, collectionId: Annotated[str, Path(description="Collection identifier")]
) -> Collection:
    """tipg's collection, an identifier that is not ``schema.table`` refused as a bad parameter."""
    if "." not in collectionId.strip("."):
        raise InvalidParameter(
            "collectionId", f"collection {collectionId!r} is not schema.table, e.g. serving.forest_change"
        )
    return CollectionParams(request, collectionId)


def strict_filter_query(
    query: Annotated[str | None, Query(description="CQL2 Filter", alias="filter")] = None,
    filter_lang: Annotated[str | None, Query(description="cql2-text or cql2-json", alias="filter-lang")] = None,
) -> Expr | None:
    """tipg's CQL2 filter, an expression cql2 cannot parse refused as the filter's error."""
    try:
        return filter_query(query, filter_lang)  # type: ignore[arg-type]
    except Exception as error:  # cql2 raises bare Exception for text or JSON it cannot parse
        raise InvalidParameter("filter", f"filter={query!r} is not valid CQL2: {str(error).strip()[:300]}") from None


async def _invalid_parameter(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidParameter)
    return _refuse(error.parameter, str(error))


async def _tipg_input_error(request: Request, error: Exception) -> JSONResponse:
    parameter = next(name for kind, name in TIPG_INPUT_ERRORS.items() if isinstance(error, kind))
    if parameter == "properties" and "sortby" in request.query_params:
        parameter = "sortby"
    return _refuse(parameter, str(error))


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems: list[dict[str, Any]] = list(error.errors())
    names = sorted({str(problem["loc"][-1]) for problem in problems})
    messages = "; ".join(f"{problem['loc'][-1]}: {problem['msg']}" for problem in problems)
    return _refuse(", ".join(names), messages)


async def _database_refused_input(request: Request, error: Exception) -> JSONResponse:
    # Only a user's value reaches PostgreSQL unchecked: a filter's column, a property's text, a tile's zoom.
    given = sorted({*request.query_params.keys(), *request.path_params.keys()} - {"collectionId", "f"})
    return _refuse(", ".join(given) or "request", f"the database refused a value of {', '.join(given)}: {error}")


def refuse_bad_input(app: FastAPI) -> None:
    """Install the stricter parameters and the 400 handlers on a tipg app (after tipg's own handlers)."""
    app.dependency_overrides[bbox_query] = strict_bbox_query
    app.dependency_overrides[datetime_query] = strict_datetime_query
    app.dependency_overrides[filter_query] = strict_filter_query
    app.dependency_overrides[TileParams] = strict_tile_params
    app.dependency_overrides[CollectionParams] = strict_collection_params
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    for kind in TIPG_INPUT_ERRORS:
        app.add_exception_handler(kind, _tipg_input_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for kind in (asyncpg.DataError, asyncpg.UndefinedColumnError):
        app.add_exception_handler(kind, _database_refused_input)
