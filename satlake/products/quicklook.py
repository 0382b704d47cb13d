"""Quicklook PNGs: true colour with a 2-98 percentile stretch, or NDVI through a small built-in colormap.

Bands are read decimated (``out_shape``) so GDAL serves them from overviews, never at full resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling

from satlake.products.ndvi import ndvi_from_reflectance

BandSource = Path | tuple[Path, int]  # a single-band file, or (multi-band file, 1-based band index)

# NDVI colormap stops: water/bare ground brown, sparse vegetation yellow, dense vegetation dark green.
NDVI_COLOR_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (-1.0, (12, 12, 120)),
    (0.0, (166, 120, 70)),
    (0.2, (222, 202, 120)),
    (0.4, (160, 200, 90)),
    (0.6, (60, 150, 50)),
    (1.0, (0, 70, 20)),
)
STRETCH_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True, slots=True)
class QuicklookReport:
    """A written quicklook."""

    path: Path
    width: int
    height: int
    kind: str  # "true_color" or "ndvi"


def quicklook_shape(width: int, height: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) of a quicklook: the longest side at most ``max_size``, aspect ratio kept."""
    scale = min(1.0, max_size / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _read_decimated(
    source: BandSource, max_size: int, source_nodata: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, valid mask) of one band at quicklook resolution."""
    path, band = (source, 1) if isinstance(source, Path | str) else source
    with rasterio.open(path) as src:
        shape = quicklook_shape(src.width, src.height, max_size)
        values = src.read(band, out_shape=shape, resampling=Resampling.average, masked=True)
    data = np.ma.getdata(values).astype(np.float64)
    valid = ~np.ma.getmaskarray(values) & np.isfinite(data)
    if source_nodata is not None:
        valid &= data != source_nodata
    return data, valid


def stretch_to_uint8(values: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Linear stretch of valid values between two percentiles to 0..255."""
    if not valid.any():
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = np.percentile(values[valid], percentiles)
    span = high - low if high > low else 1.0
    return (np.clip((values - low) / span, 0.0, 1.0) * 255).round().astype(np.uint8)


def colorize_ndvi(ndvi: np.ndarray) -> np.ndarray:
    """RGB uint8 image of NDVI values by linear interpolation between NDVI_COLOR_STOPS."""
    stops = np.array([stop for stop, _ in NDVI_COLOR_STOPS])
    colors = np.array([color for _, color in NDVI_COLOR_STOPS], dtype=np.float64)
    clipped = np.clip(np.nan_to_num(ndvi, nan=0.0), -1.0, 1.0)
    channels = [np.interp(clipped, stops, colors[:, channel]) for channel in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def render_quicklook(
    paths: Mapping[str, BandSource], dst_png: Path, max_size: int = 1024, source_nodata: float | None = None
) -> QuicklookReport:
    """Render a PNG (RGBA, transparent where there is no data) from bands keyed by eo common name.

    With red, green and blue: true colour. Otherwise with ``ndvi`` (an NDVI raster) or red and nir: NDVI
    colour-mapped. ``source_nodata`` marks undeclared fill values (0 in Landsat Level-1) as transparent.
    Raises ValueError naming the bands present when neither is possible.
    """
    dst_png = Path(dst_png)
    dst_png.parent.mkdir(parents=True, exist_ok=True)
    if {"red", "green", "blue"} <= paths.keys():
        bands = [_read_decimated(paths[name], max_size, source_nodata) for name in ("red", "green", "blue")]
        valid = bands[0][1] & bands[1][1] & bands[2][1]
        rgb = np.stack([stretch_to_uint8(data, valid, STRETCH_PERCENTILES) for data, _ in bands], axis=-1)
        kind = "true_color"
    elif "ndvi" in paths or {"red", "nir"} <= paths.keys():
        if "ndvi" in paths:
            ndvi, valid = _read_decimated(paths["ndvi"], max_size)
        else:
            (red, red_valid), (nir, nir_valid) = (
                _read_decimated(paths[n], max_size, source_nodata) for n in ("red", "nir")
            )
            ndvi = ndvi_from_reflectance(red, nir, ~(red_valid & nir_valid)).astype(np.float64)
            valid = np.isfinite(ndvi)
        rgb = colorize_ndvi(ndvi)
        kind = "ndvi"
    else:
        raise ValueError(
            f"cannot render a quicklook from bands {sorted(paths)}: need red, green and blue, or ndvi, or red and nir"
        )
    alpha = np.where(valid, 255, 0).astype(np.uint8)
    image = Image.fromarray(np.dstack([rgb, alpha]))
    image.save(dst_png, format="PNG", optimize=True)
    return QuicklookReport(path=dst_png, width=image.width, height=image.height, kind=kind)
