"""Read the window of a remote Cloud-Optimized GeoTIFF that covers an area of interest into a local single-band
tiled GeoTIFF: plan the window and the rows of tiles under it, prefetch each row as one merged range through
``remote_file.RemoteFile`` (GDAL asks for one tile at a time), and read and write it with GDAL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from satlake.acquisition.remote_file import RemoteFile, RemoteFileContainer, WindowError
from satlake.resources.http import BudgetExceeded, ByteBudget, HttpError, PoliteSession

__all__ = ["ByteBudget", "NoOverlap", "WindowError", "WindowResult", "aoi_window", "read_window"]

# AOI edges are densified before reprojection so a long lon/lat edge bends as it does in the raster's CRS.
_DENSIFY_DEGREES = 0.01
_TILE = 256
# The tiles of a COG row lie next to each other (GDAL's COG driver leaves 8 bytes of leader and trailer between
# them); a gap up to this is fetched with its neighbours rather than costing a request of its own.
PREFETCH_MERGE_GAP = 16 * 1024
# Tile-row ranges fetched at once: a few round trips in flight hide latency without hammering one host.
# Read at each prefetch rather than handed to RemoteFile once, so the read's policy stays in this module.
PREFETCH_CONCURRENCY = 4
# Prefetched bytes held at once: a window whose tiles weigh more is read in strips of tile rows, so memory stays
# bounded whatever the AOI (the prefetched bytes are dropped after each strip).
PREFETCH_MAX_BYTES = 64 * 1024 * 1024


class NoOverlap(WindowError):
    """The area of interest does not intersect the raster."""


@dataclass(frozen=True)
class WindowResult:
    """What ``read_window`` wrote and what it cost."""

    path: Path
    bytes_fetched: int  # body bytes of the Range GETs for this file
    requests: int  # HTTP requests for this file (retries included)
    width: int
    height: int
    crs: str  # "EPSG:32633" when the CRS has an EPSG code, else WKT
    transform: Affine
    bounds_lonlat: tuple[float, float, float, float]  # the window's bounds in lon/lat (minx, miny, maxx, maxy)
    bounds_native: tuple[float, float, float, float]  # the window's bounds in the raster CRS
    file_size: int  # size of the remote file
    etag: str | None
    dtype: str
    nodata: float | None


def _crs_text(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def aoi_window(geometry_lonlat: BaseGeometry, crs: CRS, transform: Affine, width: int, height: int) -> Window:
    """The pixel-grid-snapped window of a raster (crs, transform, size) covering an AOI in lon/lat.

    Raises NoOverlap when the AOI's bounds in the raster CRS miss the raster.
    """
    if transform.b != 0 or transform.d != 0:
        raise WindowError(f"raster transform {tuple(transform)[:6]} is rotated; only north-up rasters are supported")
    dense = geometry_lonlat.segmentize(_DENSIFY_DEGREES)
    projected = shape(rasterio.warp.transform_geom(CRS.from_epsg(4326), crs, mapping(dense)))
    left, bottom, right, top = projected.bounds
    float_window = from_bounds(left, bottom, right, top, transform=transform)
    # Snap outwards to whole pixels so every repeat of one AOI lands on the same grid (the same tile key).
    col0 = math.floor(float_window.col_off + 1e-9)
    row0 = math.floor(float_window.row_off + 1e-9)
    col1 = math.ceil(float_window.col_off + float_window.width - 1e-9)
    row1 = math.ceil(float_window.row_off + float_window.height - 1e-9)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, width), min(row1, height)
    if col1 <= col0 or row1 <= row0:
        west, south, east, north = rasterio.transform.array_bounds(height, width, transform)
        aoi_bounds = ", ".join(f"{value:.1f}" for value in projected.bounds)
        raster_bounds = ", ".join(f"{value:.1f}" for value in (west, south, east, north))
        raise NoOverlap(
            f"the area of interest (bounds {aoi_bounds} in {_crs_text(crs)}) does not intersect the raster "
            f"(bounds {raster_bounds}); the search returned an item outside the AOI, skip it"
        )
    return Window(col0, row0, col1 - col0, row1 - row0)


@dataclass(frozen=True)
class _TileRow:
    """One row of the window's tiles: the window rows it covers and its merged byte ranges ``[start, end)``."""

    first_row: int  # raster rows first_row..stop_row-1, clipped to the window
    stop_row: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self.ranges)


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Ranges ``[start, end)`` sorted, those at most PREFETCH_MERGE_GAP bytes apart joined (gap included)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start - merged[-1][1] <= PREFETCH_MERGE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _tile_rows(src: Any, window: Window, bands: Sequence[int]) -> list[_TileRow] | None:
    """The window's tile rows with the byte ranges of their tiles (GDAL's ``BLOCK_OFFSET_x_y``/``BLOCK_SIZE_x_y``
    TIFF metadata, read from the header GDAL parsed), or None when the file does not expose them (a stripped or
    otherwise odd TIFF): then GDAL reads it as it asks, block by block."""
    block_height, block_width = src.block_shapes[bands[0] - 1]
    # A stripped TIFF's blocks are full-width strips, often a row or a few each: a range per strip would cost more
    # requests than the block cache's runs of 16 KiB blocks, so GDAL reads it as it asks.
    stripped = block_width == src.width and block_height != block_width
    if stripped or any(src.block_shapes[band - 1] != (block_height, block_width) for band in bands):
        return None
    row0, col0 = int(window.row_off), int(window.col_off)
    row1, col1 = row0 + int(window.height), col0 + int(window.width)
    rows = []
    for tile_row in range(row0 // block_height, (row1 - 1) // block_height + 1):
        ranges = []
        for tile_col in range(col0 // block_width, (col1 - 1) // block_width + 1):
            for band in bands:
                offset = src.get_tag_item(f"BLOCK_OFFSET_{tile_col}_{tile_row}", "TIFF", bidx=band)
                size = src.get_tag_item(f"BLOCK_SIZE_{tile_col}_{tile_row}", "TIFF", bidx=band)
                if not (offset and size and offset.isdigit() and size.isdigit()):
                    return None
                if int(size) > 0:  # a sparse tile (size 0) is nodata that GDAL fills without reading
                    ranges.append((int(offset), int(offset) + int(size)))
        first = max(row0, tile_row * block_height)
        rows.append(_TileRow(first, min(row1, (tile_row + 1) * block_height), _merged(ranges)))
    return rows


def _read_prefetched(src: Any, remote: RemoteFile, window: Window) -> np.ndarray:
    """Band 1 of ``window``, its tiles prefetched row by row (a strip of rows at a time) before GDAL reads them."""
    rows = _tile_rows(src, window, (1,))
    if remote.error is not None:  # looking the offsets up read the header; GDAL may have hidden a failure
        raise remote.error
    if rows is None:
        return src.read(1, window=window)
    # The exact bytes of every tile under the window, checked once before the first tile request.
    what = f"the {len(rows)} rows of tiles under the window of {remote.shown}"
    remote.budget.ensure(sum(row.size for row in rows), what)
    data = np.empty((int(window.height), int(window.width)), dtype=src.dtypes[0])
    strips: list[list[_TileRow]] = [[]]
    for row in rows:
        if strips[-1] and sum(held.size for held in strips[-1]) + row.size > PREFETCH_MAX_BYTES:
            strips.append([])
        strips[-1].append(row)
    for strip in strips:
        remote.prefetch([byte_range for row in strip for byte_range in row.ranges], PREFETCH_CONCURRENCY)
        first, stop = strip[0].first_row - int(window.row_off), strip[-1].stop_row - int(window.row_off)
        part = Window(window.col_off, window.row_off + first, window.width, stop - first)
        src.read(1, window=part, out=data[first:stop])
        remote.drop_prefetched()
        if remote.error is not None:
            raise remote.error
    return data


def read_window(
    href: str,
    aoi_geometry_lonlat: BaseGeometry,
    session: PoliteSession,
    out_path: Path,
    byte_budget: ByteBudget,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    display_href: str | None = None,
) -> WindowResult:
    """Read the window of the remote COG at ``href`` covering the AOI into a tiled, deflated GeoTIFF at
    ``out_path`` (same dtype and nodata; band description ``description``; GeoTIFF tags ``tags``).

    ``display_href`` is the href named in errors (the unsigned one when ``href`` carries a token). Raises
    NoOverlap, WindowError (404, 403, truncated or unreadable file), RedirectRefused and BudgetExceeded.
    """
    shown = display_href or href
    remote = RemoteFile(href, session, byte_budget, display_href=shown)
    # Fetch the first block (and the size) before GDAL opens the file: failures here (404, 403, redirects,
    # truncation, budget) raise directly instead of inside GDAL's callbacks.
    remote.read(0, 1)
    container = RemoteFileContainer(remote)
    try:
        # EMPTY_DIR: GDAL must not probe for sidecar files (.aux.xml, .ovr, .msk); they would cost requests.
        with (
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
            rasterio.open(href, opener=container) as src,
        ):
            window = aoi_window(aoi_geometry_lonlat, src.crs, src.transform, src.width, src.height)
            data = _read_prefetched(src, remote, window)
            profile: dict[str, Any] = {
                "driver": "GTiff",
                "dtype": src.dtypes[0],
                "nodata": src.nodata,
                "count": 1,
                "width": int(window.width),
                "height": int(window.height),
                "crs": src.crs,
                "transform": src.window_transform(window),
                "tiled": True,
                "blockxsize": _TILE,
                "blockysize": _TILE,
                "compress": "deflate",
            }
            source_description = src.descriptions[0]
            crs = src.crs
    except (BudgetExceeded, HttpError):
        raise
    except RasterioError as error:
        # GDAL swallows exceptions raised in the file object; the remote file keeps the real cause.
        if remote.error is not None:
            raise remote.error from error
        raise WindowError(f"cannot read {shown} as a GeoTIFF: {error}; check that the asset is a COG") from error
    if remote.error is not None:  # a read failed but GDAL carried on with what it had
        raise remote.error
    partial = out_path.with_name(f".{out_path.name}.partial")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with rasterio.open(partial, "w", **profile) as dst:
            dst.write(data, 1)
            dst.set_band_description(1, description or source_description or "")
            if tags:
                dst.update_tags(**dict(tags))
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    transform = profile["transform"]
    bounds_native = rasterio.transform.array_bounds(profile["height"], profile["width"], transform)
    west, south, east, north = bounds_native[0], bounds_native[1], bounds_native[2], bounds_native[3]
    lon_lat = rasterio.warp.transform_bounds(crs, CRS.from_epsg(4326), west, south, east, north, densify_pts=21)
    return WindowResult(
        path=out_path,
        bytes_fetched=remote.bytes_fetched,
        requests=remote.requests,
        width=profile["width"],
        height=profile["height"],
        crs=_crs_text(crs),
        transform=transform,
        bounds_lonlat=(lon_lat[0], lon_lat[1], lon_lat[2], lon_lat[3]),
        bounds_native=(west, south, east, north),
        file_size=remote.size,
        etag=remote.etag,
        dtype=profile["dtype"],
        nodata=profile["nodata"],
    )
