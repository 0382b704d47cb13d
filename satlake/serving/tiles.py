"""Map tiles, TileJSON, WMTS, previews and statistics of every catalogued item's COGs, served by titiler.

The endpoints are titiler's own (``MultiBaseTilerFactory`` over rio-tiler's ``STACReader``); satlake supplies
only the item (from its catalog, through the caller's ``get_item``), the GDAL options reaching the object store,
named renderings (``tiles_renders``), the refusal to place another body's pixels on Earth, and 400s for bad input.
Annotations stay evaluated (no ``from __future__ import annotations``): FastAPI reads the closures' dependencies.
"""

from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import pystac
from fastapi import APIRouter, Depends, Request
from rasterio.session import AWSSession
from rio_tiler.io import STACReader
from rio_tiler.models import ImageData
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
from satlake.serving.tiles_requests import TileErrorRoute, check_request_bounds
from satlake.settings import Mode, Settings

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

    # rio-tiler reads the assets of a request in a thread pool it creates for that request. For one asset the pool
    # only costs: a tile read in a new thread took 31-38 ms against 19-20 ms in the request's own (bench/
    # serving_tiles.py), so a single asset is read in place; several still read in parallel.
    def tile(self, *args: Any, assets: Any = None, **kwargs: Any) -> ImageData:
        return super().tile(*args, assets=assets, **_threads_for(assets, kwargs))

    def part(self, *args: Any, assets: Any = None, **kwargs: Any) -> ImageData:
        return super().part(*args, assets=assets, **_threads_for(assets, kwargs))

    def preview(self, *args: Any, assets: Any = None, **kwargs: Any) -> ImageData:
        return super().preview(*args, assets=assets, **_threads_for(assets, kwargs))

    def feature(self, *args: Any, assets: Any = None, **kwargs: Any) -> ImageData:
        return super().feature(*args, assets=assets, **_threads_for(assets, kwargs))


def _threads_for(assets: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with rio-tiler's ``threads`` set to 1 when ``assets`` names a single asset."""
    single = isinstance(assets, str | Mapping) or (isinstance(assets, list | tuple) and len(assets) == 1)
    return {**kwargs, "threads": 1} if single and "threads" not in kwargs else kwargs


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
        router=APIRouter(route_class=TileErrorRoute, dependencies=[Depends(check_request_bounds)]),
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
