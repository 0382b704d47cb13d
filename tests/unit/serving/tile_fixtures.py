"""COGs with known pixels, aligned to one Web-Mercator tile, catalogued as STAC items, behind a small FastAPI app
that serves them through ``tiles_router`` with a ``get_item`` honouring 401/403/404 as the real API does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import rasterio
from fastapi import FastAPI, HTTPException, Request
from rasterio.transform import from_bounds

from satlake.serving.tiles import tiles_router
from satlake.settings import Settings

TILE = morecantile.Tile(x=1100, y=671, z=11)
SIZE = 256
COLLECTION = "tiles-test"
SECRET_COLLECTION = "tiles-secret"
API_KEY = "tiles-test-key"
TILE_URL = "/collections/{collection}/items/{item}/tiles/WebMercatorQuad/{z}/{x}/{y}"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def known_pattern(offset: int) -> np.ndarray:
    """A uint16 band of 1 + offset + row * 128 + column // 2: a ramp down and across, never the nodata 0."""
    rows, columns = np.indices((SIZE, SIZE), dtype=np.uint32)
    return (1 + offset + rows * 128 + columns // 2).astype(np.uint16)


def vegetation_bands() -> dict[str, np.ndarray]:
    """Reflectances of a vegetated left half (NIR high, red low) and a bare right half (NIR ~ red)."""
    red = np.full((SIZE, SIZE), 1200, np.uint16)
    nir = np.full((SIZE, SIZE), 1300, np.uint16)
    red[:, : SIZE // 2] = 400
    nir[:, : SIZE // 2] = 3600
    green = np.full((SIZE, SIZE), 900, np.uint16)
    green[:, : SIZE // 2] = 700
    blue = np.full((SIZE, SIZE), 600, np.uint16)
    return {"red": red, "green": green, "blue": blue, "nir": nir}


def with_fill_border(values: np.ndarray, width: int = 32) -> np.ndarray:
    """``values`` with a border of 0 (fill outside a scene's footprint) ``width`` pixels wide."""
    filled = np.zeros_like(values)
    filled[width:-width, width:-width] = values[width:-width, width:-width]
    return filled


def write_tile_cog(path: Path, values: np.ndarray, nodata: float | None = 0) -> Path:
    """A COG in EPSG:3857 covering exactly ``TILE`` at 256 x 256 pixels, so that tile's pixels are the values."""
    bounds = morecantile.tms.get("WebMercatorQuad").xy_bounds(TILE)
    profile = {
        "driver": "COG",
        "dtype": str(values.dtype),
        "count": 1,
        "width": SIZE,
        "height": SIZE,
        "crs": "EPSG:3857",
        "transform": from_bounds(*bounds, SIZE, SIZE),
        "nodata": nodata,
        "blocksize": 128,
        "overview_resampling": "nearest",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    return path


def _band_asset(path: Path, name: str) -> dict[str, Any]:
    return {
        "href": str(path),
        "type": COG_TYPE,
        "roles": ["data"],
        "bands": [{"name": name, "eo:common_name": name, "data_type": "uint16", "nodata": 0}],
    }


def tile_item(item_id: str, assets: dict[str, dict[str, Any]], collection: str = COLLECTION) -> dict[str, Any]:
    """A STAC item over ``TILE`` in EPSG:3857 with the given assets."""
    west, south, east, north = morecantile.tms.get("WebMercatorQuad").bounds(TILE)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    x_min, _, x_max, y_max = morecantile.tms.get("WebMercatorQuad").xy_bounds(TILE)
    resolution = (x_max - x_min) / SIZE
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": item_id,
        "collection": collection,
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "datetime": "2024-05-02T10:00:00Z",
            "proj:code": "EPSG:3857",
            "proj:shape": [SIZE, SIZE],
            "proj:transform": [resolution, 0.0, x_min, 0.0, -resolution, y_max],
        },
        # As the API serves it: a self link on the server, which must not turn a local href into a URL.
        "links": [{"rel": "self", "href": f"http://testserver/collections/{collection}/items/{item_id}"}],
        "assets": assets,
    }


def build_tile_items(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The catalogue of the tests: ``pattern`` (red/green/blue/nir with known values), ``vegetation`` (a green
    half, with an NDVI product), ``bands-only`` (no NDVI asset), ``unfilled`` (bands with a fill border of 0 and
    no declared nodata, as Landsat Level-1 writes them), a single-band Mars item, and one in a secret collection."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = {
        band: _band_asset(write_tile_cog(folder / f"pattern_{band}.tif", known_pattern(offset)), band)
        for offset, band in enumerate(("red", "green", "blue", "nir"))
    }
    bands = vegetation_bands()
    vegetation = {band: _band_asset(write_tile_cog(folder / f"veg_{band}.tif", bands[band]), band) for band in bands}
    ndvi = (bands["nir"].astype(np.float32) - bands["red"]) / (bands["nir"].astype(np.float32) + bands["red"])
    ndvi_path = write_tile_cog(folder / "veg_ndvi.tif", ndvi.astype(np.float32), nodata=float("nan"))
    with_ndvi = vegetation | {"ndvi": {"href": str(ndvi_path), "type": COG_TYPE, "roles": ["data", "ndvi"]}}
    albedo = write_tile_cog(folder / "mars_albedo.tif", known_pattern(0))
    mars = tile_item("mars-scene", {"albedo": _band_asset(albedo, "albedo")})
    mars["properties"] |= {"ssys:targets": ["mars"], "proj:code": "IAU_2015:49910"}
    unfilled = {
        band: _band_asset(write_tile_cog(folder / f"unfilled_{band}.tif", with_fill_border(values), nodata=None), band)
        for band, values in bands.items()
    }
    items = [
        tile_item("pattern", pattern),
        tile_item("unfilled", unfilled),
        tile_item("vegetation", with_ndvi),
        tile_item("bands-only", vegetation),
        mars,
        tile_item("hidden", pattern, collection=SECRET_COLLECTION),
    ]
    return {(item["collection"], item["id"]): item for item in items}


def tiles_app(items: dict[tuple[str, str], dict[str, Any]], settings: Settings | None = None) -> FastAPI:
    """A FastAPI app mounting ``tiles_router`` over ``items`` (assets read per ``settings``, default embedded):
    the secret collection needs ``X-API-Key`` (401 without a key, 403 with a wrong one), an unknown item is a
    404."""

    def get_item(request: Request, collection_id: str, item_id: str) -> dict[str, Any]:
        if collection_id == SECRET_COLLECTION:
            key = request.headers.get("x-api-key")
            if key is None:
                raise HTTPException(401, detail="an API key is needed for this collection")
            if key != API_KEY:
                raise HTTPException(403, detail="this API key may not read this collection")
        item = items.get((collection_id, item_id))
        if item is None:
            raise HTTPException(404, detail=f"no item {item_id!r} in collection {collection_id!r}")
        return item

    app = FastAPI()
    app.include_router(tiles_router(get_item, settings or Settings()))
    return app
