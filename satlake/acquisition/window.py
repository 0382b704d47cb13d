"""Range-read the window of a remote Cloud-Optimized GeoTIFF that covers an area of interest, and write it as a
local single-band tiled GeoTIFF: only the header and the tiles under the window cross the network.

GDAL reads through a Python file object (rasterio's ``opener=``) whose every byte comes from an HTTP Range GET
on the polite session, so requests and bytes are counted and the byte budget holds exactly.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
import rasterio.warp
from affine import Affine
from rasterio.abc import FileContainer
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from satlake.acquisition.http import BudgetExceeded, ByteBudget, HttpError, PoliteSession, TruncatedResponse

__all__ = ["ByteBudget", "NoOverlap", "RemoteFile", "WindowError", "WindowResult", "aoi_window", "read_window"]

# AOI edges are densified before reprojection so a long lon/lat edge bends as it does in the raster's CRS.
_DENSIFY_DEGREES = 0.01
_TILE = 256
# GDAL reads a TIFF header in many small pieces; 16 KiB blocks turn them into a few requests without reading
# much beyond what a window needs (runs of missing blocks are fetched in one request).
BLOCK_BYTES = 16 * 1024
# At most this many cached blocks per file (64 MiB), so a whole-scene AOI does not hold the file in memory.
_MAX_CACHED_BLOCKS = 4096
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class WindowError(HttpError):
    """The window of a remote raster could not be read or written; the message names the href."""


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


class RemoteFile:
    """A remote file read by HTTP Range GETs in aligned blocks, cached (LRU) across the handles GDAL opens."""

    def __init__(self, href: str, session: PoliteSession, budget: ByteBudget, display_href: str | None = None) -> None:
        self.href = href
        self.shown = display_href or href
        self.session = session
        self.budget = budget
        self.bytes_fetched = 0
        self.requests = 0
        self.etag: str | None = None
        self.error: Exception | None = None  # the first failure, kept because GDAL swallows it
        self._size: int | None = None
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    @property
    def size(self) -> int:
        if self._size is None:
            self._fetch(0, 0)  # the first block also tells the total size (Content-Range)
        assert self._size is not None
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file)."""
        try:
            end = min(offset + length, self.size)
            if end <= offset:
                return b""
            first, last = offset // BLOCK_BYTES, (end - 1) // BLOCK_BYTES
            missing = [index for index in range(first, last + 1) if index not in self._blocks]
            # One request per run of consecutive missing blocks.
            run_start = None
            for position, index in enumerate(missing):
                if run_start is None:
                    run_start = index
                if position + 1 == len(missing) or missing[position + 1] != index + 1:
                    self._fetch(run_start, index)
                    run_start = None
            parts = []
            for index in range(first, last + 1):
                block = self._blocks[index]
                self._blocks.move_to_end(index)
                parts.append(block)
            data = b"".join(parts)
            start = offset - first * BLOCK_BYTES
            return data[start : start + (end - offset)]
        except Exception as error:
            if self.error is None:
                self.error = error
            raise

    def _fetch(self, first_block: int, last_block: int) -> None:
        start = first_block * BLOCK_BYTES
        stop = (last_block + 1) * BLOCK_BYTES - 1
        if self._size is not None:
            stop = min(stop, self._size - 1)
        wanted = stop - start + 1
        self.budget.ensure(wanted, self.shown)
        before = self.session.requests_made
        response = self.session.get(self.href, headers={"Range": f"bytes={start}-{stop}"})
        self.requests += self.session.requests_made - before
        body = response.content
        if response.status_code == 404:
            raise WindowError(
                f"asset {self.shown} was not found (HTTP 404); the item lists a file the service no longer has, "
                "search again or skip this item"
            )
        if response.status_code in (401, 403):
            raise WindowError(
                f"asset {self.shown} was refused (HTTP {response.status_code}); the href needs signing or "
                "credentials (Planetary Computer hrefs must be signed through its SAS token endpoint)"
            )
        if response.status_code == 200:
            self.budget.charge(len(body), self.shown)
            raise WindowError(
                f"asset {self.shown} answered a Range request with the whole file (HTTP 200, {len(body)} bytes); "
                "the server does not support range reads, which satlake needs to fetch only the AOI window"
            )
        if response.status_code != 206:
            raise WindowError(
                f"asset {self.shown} answered HTTP {response.status_code} to bytes={start}-{stop}: "
                f"{response.text[:200]!r}"
            )
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not match or match.group(3) == "*":
            raise WindowError(
                f"asset {self.shown} sent a partial response without a usable Content-Range "
                f"({response.headers.get('Content-Range')!r}); the server's range support is broken"
            )
        got_start, got_stop, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
        if self._size is None:
            self._size = total
            stop = min(stop, total - 1)
        elif total != self._size:
            raise WindowError(f"asset {self.shown} changed size during the read ({self._size} -> {total} bytes)")
        etag = response.headers.get("ETag")
        if self.etag is None:
            self.etag = etag
        elif etag is not None and etag != self.etag:
            raise WindowError(f"asset {self.shown} changed during the read (ETag {self.etag} -> {etag}); retry")
        self.budget.charge(len(body), self.shown)
        self.bytes_fetched += len(body)
        if got_start != start or got_stop != stop or len(body) != stop - start + 1:
            raise TruncatedResponse(
                f"asset {self.shown}: asked bytes {start}-{stop}, got {len(body)} bytes for range "
                f"{got_start}-{got_stop}; the transfer was cut short, retry later"
            )
        for index in range(first_block, last_block + 1):
            offset = index * BLOCK_BYTES - start
            self._blocks[index] = body[offset : offset + BLOCK_BYTES]
        while len(self._blocks) > _MAX_CACHED_BLOCKS:
            self._blocks.popitem(last=False)


class _RemoteHandle(io.RawIOBase):
    """One GDAL file handle on a RemoteFile: its own position, the shared block cache."""

    def __init__(self, remote: RemoteFile) -> None:
        super().__init__()
        self._remote = remote
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        elif whence == io.SEEK_END:
            self._position = self._remote.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._remote.size - self._position)
        try:
            data = self._remote.read(self._position, size)
        except Exception:
            # An exception crossing GDAL's C++ callbacks can abort the process; a short read makes GDAL fail
            # cleanly, and read_window raises the error RemoteFile kept.
            return b""
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class RemoteFileContainer(FileContainer):
    """The rasterio opener for one remote file: GDAL sees exactly one file, so probes for sidecars cost nothing."""

    def __init__(self, remote: RemoteFile) -> None:
        self._remote = remote

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> _RemoteHandle:
        if path != self._remote.href or "w" in mode or "+" in mode:
            raise FileNotFoundError(path)
        return _RemoteHandle(self._remote)

    def isfile(self, path: str) -> bool:
        return path == self._remote.href

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []

    def mtime(self, path: str) -> int:
        return 0

    def size(self, path: str) -> int:
        if path != self._remote.href:
            raise FileNotFoundError(path)
        return self._remote.size

    def rm(self, path: str) -> None:
        raise PermissionError(f"{path} is read-only")


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
            data = src.read(1, window=window)
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
