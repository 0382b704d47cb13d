"""NDVI products: (nir - red) / (nir + red) computed window by window into a float32 COG.

Nodata is NaN: a pixel is NaN where either input is nodata or non-finite, where a reflectance is negative
(calibration artefacts over dark water), or where red + nir is zero. Every other value lies in [-1, 1].
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from satlake.scenes.cog import DEFAULT_COG_PROFILE, convert_to_cog

NDVI_NODATA = float("nan")
NDVI_WINDOW_SIZE = 1024
_COPIED_TAGS = ("ACQUISITION_TIME", "PLATFORM", "CLOUD_COVER")


class GridMismatchError(ValueError):
    """Two rasters that must share a pixel grid do not."""


@dataclass(frozen=True, slots=True)
class NdviReport:
    """Statistics of a written NDVI raster (over valid pixels)."""

    path: Path
    min: float | None
    max: float | None
    mean: float | None
    valid_fraction: float  # valid pixels / all pixels, 0..1


def _windows(width: int, height: int, size: int) -> list[Window]:
    return [
        Window(col, row, min(size, width - col), min(size, height - row))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def ndvi_from_reflectance(red: np.ndarray, nir: np.ndarray, invalid: np.ndarray | None = None) -> np.ndarray:
    """Float32 NDVI of reflectance arrays; NaN where ``invalid`` or where the ratio is undefined."""
    red = red.astype(np.float64, copy=False)
    nir = nir.astype(np.float64, copy=False)
    total = nir + red
    bad = ~np.isfinite(red) | ~np.isfinite(nir) | (red < 0) | (nir < 0) | (total <= 0)
    if invalid is not None:
        bad |= invalid
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / np.where(bad, 1.0, total)
    ndvi[bad] = np.nan
    return ndvi.astype(np.float32)


def compute_ndvi(
    red_path: Path,
    nir_path: Path,
    dst_path: Path,
    red_band: int = 1,
    nir_band: int = 1,
    red_scale_offset: tuple[float, float] = (1.0, 0.0),
    nir_scale_offset: tuple[float, float] = (1.0, 0.0),
    source_nodata: float | None = None,
    profile: str = DEFAULT_COG_PROFILE,
    window_size: int = NDVI_WINDOW_SIZE,
) -> NdviReport:
    """Write the NDVI of two bands on the same grid as a float32 COG (nodata NaN) at ``dst_path``.

    Reflectance = DN * scale + offset per band (Landsat MTL REFLECTANCE_MULT/ADD; (1e-4, 0) for 0..10000
    data). ``source_nodata`` overrides the files' nodata (Landsat Level-1 uses 0 without declaring it).
    The raster is processed in ``window_size`` windows so memory stays bounded. The acquisition tags of the
    red file are copied so downstream products know the date.
    """
    red_scale, red_offset = red_scale_offset
    nir_scale, nir_offset = nir_scale_offset
    dst_path = Path(dst_path)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    count, total_sum = 0, 0.0
    low, high = math.inf, -math.inf
    with rasterio.open(red_path) as red_src, rasterio.open(nir_path) as nir_src:
        if (
            (red_src.width, red_src.height) != (nir_src.width, nir_src.height)
            or red_src.crs != nir_src.crs
            or not red_src.transform.almost_equals(nir_src.transform)
        ):
            raise GridMismatchError(
                f"red {red_path} ({red_src.width}x{red_src.height}, {red_src.crs}) and nir {nir_path} "
                f"({nir_src.width}x{nir_src.height}, {nir_src.crs}) are not on the same grid; "
                "resample one onto the other first"
            )
        red_nodata = source_nodata if source_nodata is not None else red_src.nodatavals[red_band - 1]
        nir_nodata = source_nodata if source_nodata is not None else nir_src.nodatavals[nir_band - 1]
        profile_out = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 1,
            "width": red_src.width,
            "height": red_src.height,
            "crs": red_src.crs,
            "transform": red_src.transform,
            "nodata": NDVI_NODATA,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
        with tempfile.TemporaryDirectory(dir=dst_path.parent, prefix=".ndvi-") as scratch:
            raw_path = Path(scratch) / "ndvi.tif"
            with rasterio.open(raw_path, "w", **profile_out) as out:
                tags = {k: v for k, v in red_src.tags().items() if k in _COPIED_TAGS}
                out.update_tags(**tags, PRODUCT="ndvi")
                out.set_band_description(1, "ndvi")
                for window in _windows(red_src.width, red_src.height, window_size):
                    red_dn = red_src.read(red_band, window=window).astype(np.float64)
                    nir_dn = nir_src.read(nir_band, window=window).astype(np.float64)
                    invalid = np.zeros(red_dn.shape, dtype=bool)
                    if red_nodata is not None:
                        invalid |= red_dn == red_nodata if not math.isnan(red_nodata) else np.isnan(red_dn)
                    if nir_nodata is not None:
                        invalid |= nir_dn == nir_nodata if not math.isnan(nir_nodata) else np.isnan(nir_dn)
                    ndvi = ndvi_from_reflectance(
                        red_dn * red_scale + red_offset, nir_dn * nir_scale + nir_offset, invalid
                    )
                    valid = ndvi[np.isfinite(ndvi)]
                    if valid.size:
                        count += int(valid.size)
                        total_sum += float(valid.sum(dtype=np.float64))
                        low, high = min(low, float(valid.min())), max(high, float(valid.max()))
                    out.write(ndvi, 1, window=window)
            convert_to_cog(raw_path, dst_path, profile=profile, overview_resampling="average")
        pixels = red_src.width * red_src.height
    return NdviReport(
        path=dst_path,
        min=low if count else None,
        max=high if count else None,
        mean=total_sum / count if count else None,
        valid_fraction=count / pixels,
    )
