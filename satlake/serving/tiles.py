"""Map tiles, TileJSON, WMTS, previews and statistics of every catalogued item's COGs, served by titiler.

The endpoints are titiler's own (``MultiBaseTilerFactory`` over rio-tiler's ``STACReader``); satlake supplies
only the item (from its catalog, through the caller's ``get_item``), the GDAL options reaching the object store,
named renderings (``tiles_renders``), the refusal to place another body's pixels on Earth, and 400s for bad input.
Annotations stay evaluated (no ``from __future__ import annotations``): FastAPI reads the closures' dependencies.
"""

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import pystac
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from rasterio.errors import RasterioIOError
from rasterio.session import AWSSession
from rio_tiler.errors import (
    AssetAsBandError,
    InvalidAssetName,
    InvalidBandName,
    InvalidBufferSize,
    InvalidExpression,
    InvalidFormat,
    MaxArraySizeError,
    MissingAssets,
    MissingBands,
    TileOutsideBounds,
)
from rio_tiler.io import STACReader
from titiler.core.factory import MultiBaseTilerFactory
from titiler.extensions import wmtsExtension

from satlake.catalog.items import EARTH, item_body
from satlake.serving.tiles_renders import (
    PRESET_QUERY_DEPENDENCIES,
    AllAssetsParams,
    TileRequestError,
    item_renders,
    render_dependencies,
)
from satlake.settings import Mode, Settings

logger = logging.getLogger(__name__)

ITEM_PREFIX = "/collections/{collection_id}/items/{item_id}"

GetItem = Callable[[Request, str, str], dict[str, Any]]

# Endpoints that place pixels on an Earth tile matrix set or take Earth coordinates; an item of another body is
# refused there. Its /info, /assets, /statistics and /preview (in its own CRS) still answer.
EARTH_ONLY_PATHS = (
    "/tiles",
    "/tiles/{tileMatrixSetId}",
    "/tiles/{tileMatrixSetId}/{z}/{x}/{y}",
    "/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}",
    "/{tileMatrixSetId}/tilejson.json",
    "/WMTSCapabilities.xml",
    "/info.geojson",
    "/point/{lon},{lat}",
    "/bbox/{minx},{miny},{maxx},{maxy}.{format}",
    "/bbox/{minx},{miny},{maxx},{maxy}/{width}x{height}.{format}",
    "/feature",
    "/feature.{format}",
    "/feature/{width}x{height}.{format}",
)

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

# rio-tiler's errors that a request's own parameters cause, and the parameter each names: answered with a 400.
BAD_REQUEST_ERRORS: dict[type[Exception], str] = {
    InvalidExpression: "expression",
    InvalidBufferSize: "buffer",
    MaxArraySizeError: "max_size",
    InvalidFormat: "format",
    AssetAsBandError: "assets",
    InvalidAssetName: "assets",
    InvalidBandName: "assets",
    MissingAssets: "assets",
    MissingBands: "assets",
}


def gdal_environment(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``rasterio.Env`` for reading the assets: GDAL's defaults for local files (embedded);
    for ``s3://`` hrefs (stack), a rasterio AWS session with MinIO's endpoint and satlake's keys (rasterio accepts
    credentials only through a session), path-style addressing, and plain HTTP when the endpoint is."""
    options: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    if settings.mode is not Mode.STACK:
        return options
    access_key, secret_key = settings.require_s3_credentials()
    endpoint = urlsplit(settings.s3_endpoint)
    session = AWSSession(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=settings.s3_region,
        endpoint_url=endpoint.netloc,
    )
    return options | {
        "session": session,
        "AWS_HTTPS": "YES" if endpoint.scheme == "https" else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


class CatalogItemReader(STACReader):
    """rio-tiler's STACReader over an item dict the catalog already returned (its ``input``; no fetch by URL).

    The item is read without its links: asset hrefs in the catalog are absolute (a local path or ``s3://``), and
    pystac would otherwise resolve a local path against the API's own ``self`` URL."""

    def __attrs_post_init__(self) -> None:
        self.item = pystac.Item.from_dict({**self.input, "links": []})  # type: ignore[dict-item]
        super().__attrs_post_init__()


def _error_response(status: int, parameter: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"code": "BadRequest", "parameter": parameter, "detail": message})


class TileErrorRoute(APIRoute):
    """A route answering bad input with a 400 JSON body that names the parameter, instead of titiler's 422 or a
    500 from rio-tiler, whatever application mounts the router."""

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
            except TileOutsideBounds as error:
                return JSONResponse(status_code=404, content={"code": "TileOutsideBounds", "detail": str(error)})
            except RasterioIOError as error:
                logger.error("tiles: %s %s could not read an asset: %s", request.method, request.url.path, error)
                detail = (
                    f"an asset of this item could not be read ({error}); check that its object exists and, in "
                    "stack mode, that MinIO runs (`satlake stack status`) and SATLAKE_S3_* are right"
                )
                return JSONResponse(status_code=500, content={"code": "AssetUnreadable", "detail": detail})

        return handle


def limit_image_size(request: Request) -> None:
    """Refuse an image larger than :data:`IMAGE_SIZE_LIMITS` before anything is read (query or path parameter)."""
    for name, limit in IMAGE_SIZE_LIMITS.items():
        raw = request.query_params.get(name, request.path_params.get(name))
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            continue  # not a number: titiler's own validation answers, naming the parameter
        if value is not None and value > limit:
            raise TileRequestError(name, f"{value:g} is more than the {limit} pixels allowed; ask for a smaller image")


def _earth_only(item_dependency: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    def require_earth(item: Annotated[dict[str, Any], Depends(item_dependency)]) -> None:
        body = item_body(item)
        if body != EARTH:
            code = item.get("properties", {}).get("proj:code") or "its own CRS"
            raise TileRequestError(
                "tileMatrixSetId",
                f"item {item.get('id')!r} images {body} ({code}); its pixels are not placed on Earth's tile matrix "
                "sets or coordinates. Use its /preview, /info or /statistics instead.",
            )

    return require_earth


def tiles_router(get_item: GetItem, settings: Settings | None = None) -> APIRouter:
    """titiler's item endpoints under ``/collections/{collection_id}/items/{item_id}``: ``/tiles/{tms}/{z}/{x}/{y}``
    (``.png``, ``.npy``, ...), ``/{tms}/tilejson.json``, ``/WMTSCapabilities.xml``, ``/tiles``, ``/preview``,
    ``/info``, ``/assets``, ``/statistics``, ``/point``, ``/bbox``, ``/feature``, ``/renders``.

    ``get_item(request, collection_id, item_id)`` returns the full STAC item dict or raises an HTTPException
    (401/403/404), which reaches the client unchanged. ``settings`` picks the GDAL options for the assets' store
    (default: from the environment). Every image endpoint takes ``render=truecolor|grayscale|ndvi`` besides
    titiler's own parameters (``/renders`` lists an item's); with neither, the item's first rendering is drawn.
    """
    env = gdal_environment(settings or Settings.from_env())

    def item_dependency(request: Request, collection_id: str, item_id: str) -> dict[str, Any]:
        return get_item(request, collection_id, item_id)

    renders = render_dependencies(item_dependency, env)

    def environment() -> dict[str, Any]:
        return env

    def item_render_queries(reader: CatalogItemReader) -> dict[str, dict[str, Any]]:
        return {name: preset.query() for name, preset in item_renders(reader.input).items()}

    factory = MultiBaseTilerFactory(
        reader=CatalogItemReader,
        router=APIRouter(route_class=TileErrorRoute, dependencies=[Depends(limit_image_size)]),
        router_prefix=ITEM_PREFIX,
        path_dependency=item_dependency,
        layer_dependency=renders.layers,  # type: ignore[arg-type]
        dataset_dependency=renders.dataset,  # type: ignore[arg-type]
        assets_dependency=AllAssetsParams,
        render_dependency=renders.rendering,  # type: ignore[arg-type]
        colormap_dependency=renders.colormap,
        environment_dependency=environment,
        get_renders=item_render_queries,  # type: ignore[arg-type]
        add_viewer=False,  # titiler's viewer loads its map library from a CDN; satlake's /map ships its own
        extensions=[
            wmtsExtension(
                tile_dependencies=PRESET_QUERY_DEPENDENCIES,
                layer_identifier_provider=lambda item: f"{item.get('collection')}_{item.get('id')}",
            )
        ],
    )
    require_earth = _earth_only(item_dependency)
    factory.add_route_dependencies(
        scopes=[{"path": path, "method": method} for path in EARTH_ONLY_PATHS for method in ("GET", "POST")],
        dependencies=[Depends(require_earth)],
    )
    _add_renders_route(factory.router, item_dependency, env)
    router = APIRouter()
    router.include_router(factory.router, prefix=ITEM_PREFIX, tags=["Tiles"])
    return router


def _add_renders_route(
    router: APIRouter, item_dependency: Callable[..., dict[str, Any]], env: Mapping[str, str]
) -> None:
    import rasterio

    @router.get("/renders", summary="The item's named renderings and the titiler parameters each stands for.")
    def renders(item: Annotated[dict[str, Any], Depends(item_dependency)]) -> dict[str, Any]:
        with rasterio.Env(**env):
            presets = item_renders(item)
        return {
            "renders": {
                name: {"title": preset.title, "params": preset.query(), "query": f"render={name}"}
                for name, preset in presets.items()
            }
        }
