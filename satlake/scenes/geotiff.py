"""Opening one GeoTIFF of a scene: the sanity checks that make it a usable georeferenced raster, and
RasterReadError naming the file and the reason when it is not (so the caller can quarantine the scene).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

__all__ = ["MAX_BANDS", "MAX_RASTER_SIDE", "RasterFile", "RasterReadError", "open_raster"]

PROBE_SIDE = 512
PROBE_CACHE_MB = 64
# Blocks larger than this are not decoded by the probe (GDAL would allocate the whole block, and a lying header
# can declare a 128 MB strip in a 1 kB file); their offsets and byte counts are checked against the file instead.
PROBE_DECODE_MAX_BYTES = 16 << 20
MAX_RASTER_SIDE = 1 << 20  # 1,048,576 pixels: larger declared sides are corrupt headers, not imagery
MAX_BANDS = 1000

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


class RasterReadError(Exception):
    """A scene file that cannot be read as a georeferenced raster."""

    def __init__(self, file: str | Path, reason: str) -> None:
        self.file = str(file)
        self.reason = reason
        super().__init__(
            f"cannot read raster {self.file!r}: {reason}. The original stays in the raw zone; "
            "re-export it as a GeoTIFF with a CRS and upload it again."
        )


@dataclass(frozen=True, slots=True)
class RasterFile:
    """What one GeoTIFF says about itself after the sanity checks."""

    name: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    dtypes: tuple[str, ...]
    nodatavals: tuple[float | None, ...]
    descriptions: tuple[str | None, ...]
    band_tags: tuple[dict[str, str], ...]
    colorinterp: tuple[ColorInterp, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    tags: dict[str, str]


def _check_tiff_magic(name: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise RasterReadError(name, f"file cannot be read ({error.strerror or error})") from error
    if not head:
        raise RasterReadError(name, "file is empty (0 bytes)")
    if head not in _TIFF_MAGICS:
        raise RasterReadError(name, f"not a TIFF: starts with bytes {head!r}, expected 'II*\\0' or 'MM\\0*'")


def open_raster(name: str, path: Path) -> RasterFile:
    _check_tiff_magic(name, path)
    try:
        with (
            warnings.catch_warnings(),
            # A small block cache: the probe reads one block at each end, never a tile pyramid; GDAL's default
            # (5 % of RAM) would let a lying header's giant strip stay cached for nothing.
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_CACHEMAX=PROBE_CACHE_MB),
            rasterio.open(path, driver="GTiff") as src,
        ):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            if src.count < 1:
                raise RasterReadError(name, "raster has zero bands")
            if src.count > MAX_BANDS:
                raise RasterReadError(name, f"raster declares {src.count} bands, more than {MAX_BANDS}")
            if not (0 < src.width <= MAX_RASTER_SIDE and 0 < src.height <= MAX_RASTER_SIDE):
                raise RasterReadError(
                    name,
                    f"declared size {src.width}x{src.height} is outside 1..{MAX_RASTER_SIDE} pixels per side",
                )
            if src.crs is None:
                reason = "raster has no CRS"
                if src.gcps[0]:
                    reason += " (only ground control points; orthorectify it first)"
                raise RasterReadError(name, reason)
            transform = src.transform
            if not all(math.isfinite(value) for value in transform[:6]):
                raise RasterReadError(name, f"geotransform has non-finite values {tuple(transform[:6])}")
            if transform.determinant == 0:
                raise RasterReadError(name, "geotransform is degenerate (zero pixel size)")
            bounds = src.bounds
            if not all(math.isfinite(value) for value in bounds):
                raise RasterReadError(name, f"bounds are not finite: {tuple(bounds)}")
            try:
                crs = CRS.from_wkt(src.crs.to_wkt())
            except CRSError as error:
                raise RasterReadError(name, f"CRS cannot be interpreted ({error})") from error
            _probe_end_blocks(src, name, path.stat().st_size)
            return RasterFile(
                name=name,
                crs=crs,
                transform=transform,
                width=src.width,
                height=src.height,
                dtypes=tuple(src.dtypes),
                nodatavals=tuple(src.nodatavals),
                descriptions=tuple(src.descriptions),
                band_tags=tuple(src.tags(index) for index in src.indexes),
                colorinterp=tuple(src.colorinterp),
                scales=tuple(src.scales),
                offsets=tuple(src.offsets),
                tags=src.tags(),
            )
    except RasterReadError:
        raise
    except (RasterioError, OSError, ValueError, MemoryError) as error:
        detail = str(error)
        if error.__cause__ is not None:
            detail += f": {error.__cause__}"  # rasterio puts GDAL's own message on the cause
        raise RasterReadError(name, f"GDAL could not read it ({detail})") from error


def _probe_end_blocks(src: rasterio.DatasetReader, name: str, file_size: int) -> None:
    """Check the first and last block of every band: a truncated file opens fine but fails here.

    A block of at most PROBE_DECODE_MAX_BYTES is decoded (GDAL decodes a whole block to read any pixel of it, so
    a window of at most PROBE_SIDE pixels a side is enough). A larger block is not decoded: its offset and byte
    count, as the TIFF directory gives them, must exist and lie within the file, which is what truncation and a
    header declaring more blocks than the file holds both break.
    """
    block_height, block_width = src.block_shapes[0]
    pixel_interleaved = src.interleaving is not None and src.interleaving.name == "pixel"
    pixel_bytes = max(np.dtype(dtype).itemsize for dtype in src.dtypes) * (src.count if pixel_interleaved else 1)
    if block_height * block_width * pixel_bytes <= PROBE_DECODE_MAX_BYTES:
        last_row = max(0, src.height - block_height)
        last_col = max(0, src.width - block_width)
        for window in (
            Window(0, 0, min(block_width, src.width, PROBE_SIDE), min(block_height, src.height, PROBE_SIDE)),
            Window(last_col, last_row, min(src.width - last_col, PROBE_SIDE), min(src.height - last_row, PROBE_SIDE)),
        ):
            src.read(window=window)
        return
    last = ((src.width - 1) // block_width, (src.height - 1) // block_height)
    bands = [1] if pixel_interleaved else list(src.indexes)
    for band in bands:
        for column, row in ((0, 0), last):
            offset = src.get_tag_item(f"BLOCK_OFFSET_{column}_{row}", "TIFF", bidx=band)
            size = src.get_tag_item(f"BLOCK_SIZE_{column}_{row}", "TIFF", bidx=band)
            if offset is None or size is None:
                raise RasterReadError(
                    name,
                    f"band {band} has no block at column {column}, row {row}: the header declares more "
                    f"blocks ({last[0] + 1} x {last[1] + 1}) than the file holds",
                )
            if int(offset) + int(size) > file_size:
                raise RasterReadError(
                    name,
                    f"band {band}, block at column {column}, row {row} ends at byte "
                    f"{int(offset) + int(size):,}, past the end of the {file_size:,}-byte file (truncated?)",
                )
