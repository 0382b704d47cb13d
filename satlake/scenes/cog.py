"""Cloud-Optimized GeoTIFFs: named profiles, conversion one band per file, the storage layout, and checks.

Conversion streams through a temporary file next to the destination (never the whole raster in memory) and
renames into place, so a crash never leaves a half-written COG at its final path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate, cog_validate

from satlake.scenes.cells import scene_cell_key
from satlake.scenes.metadata import BandInfo, SceneMetadata

COG_BLOCK_SIZE = 512
MIN_COG_BLOCK_SIZE = 64
PREDICTOR_FOR_INTEGERS = 2  # horizontal differencing
PREDICTOR_FOR_FLOATS = 3  # floating-point predictor

_TILED = {"driver": "GTiff", "interleave": "pixel", "tiled": True}
COG_PROFILES: dict[str, dict[str, Any]] = {
    "deflate": {**_TILED, "compress": "DEFLATE", "zlevel": 6},
    "zstd": {**_TILED, "compress": "ZSTD", "zstd_level": 9},
    "lzw": {**_TILED, "compress": "LZW"},
}
DEFAULT_COG_PROFILE = "deflate"
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class CogReport:
    """What a conversion wrote."""

    path: Path
    size_bytes: int
    overviews: tuple[int, ...]  # decimation factors of the internal overviews, e.g. (2, 4, 8)
    blocksize: tuple[int, int]  # (rows, columns) of the internal tiles
    compression: str
    seconds: float = 0.0


def cog_creation_options(profile: str, dtype: str, width: int, height: int) -> dict[str, Any]:
    """GDAL creation options for ``profile`` with the predictor for ``dtype`` and a tile size that fits.

    Rasters smaller than two tiles get smaller tiles (down to 64) so they still carry one overview level.
    """
    if profile not in COG_PROFILES:
        raise ValueError(f"unknown COG profile {profile!r}; choose one of {sorted(COG_PROFILES)}")
    options = dict(COG_PROFILES[profile])
    options["predictor"] = PREDICTOR_FOR_FLOATS if np.dtype(dtype).kind == "f" else PREDICTOR_FOR_INTEGERS
    block = COG_BLOCK_SIZE
    while block > MIN_COG_BLOCK_SIZE and max(width, height) < 2 * block:
        block //= 2
    options["blockxsize"] = options["blockysize"] = block
    return options


def _overview_level(width: int, height: int, block: int) -> int:
    """Overview levels until the smallest fits in one tile; at least one so every COG has overviews."""
    level, size = 0, max(width, height)
    while size > block:
        size = (size + 1) // 2
        level += 1
    return max(level, 1)


def convert_to_cog(
    src_path: Path,
    dst_path: Path,
    profile: str = DEFAULT_COG_PROFILE,
    overview_resampling: str = "average",
    in_memory: bool = False,
    band_index: int | None = None,
) -> CogReport:
    """Write ``src_path`` (all bands, or only ``band_index``) as a COG at ``dst_path``.

    Pixels are copied unchanged (lossless profiles only); nodata, dataset tags, band descriptions and band
    tags are kept. With ``in_memory=False`` the intermediate raster is a temporary file, so rasters larger
    than memory convert.
    """
    started = time.perf_counter()
    dst_path = Path(dst_path)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src_path) as src:
        indexes = [band_index] if band_index is not None else list(src.indexes)
        if any(index < 1 or index > src.count for index in indexes):
            raise ValueError(f"{src_path}: band {band_index} does not exist (the file has {src.count} bands)")
        options = cog_creation_options(profile, src.dtypes[indexes[0] - 1], src.width, src.height)
        block = options["blockxsize"]
        partial = dst_path.with_name(f".{dst_path.name}.partial")
        try:
            cog_translate(
                src,
                partial,
                options,
                indexes=indexes,
                overview_level=_overview_level(src.width, src.height, block),
                overview_resampling=overview_resampling,
                in_memory=in_memory,
                forward_band_tags=True,
                quiet=True,
            )
            os.replace(partial, dst_path)
        finally:
            partial.unlink(missing_ok=True)
    with rasterio.open(dst_path) as cog:
        overviews = tuple(cog.overviews(1))
        blocksize = cog.block_shapes[0]
    return CogReport(
        path=dst_path,
        size_bytes=dst_path.stat().st_size,
        overviews=overviews,
        blocksize=(int(blocksize[0]), int(blocksize[1])),
        compression=options["compress"].lower(),
        seconds=time.perf_counter() - started,
    )


def band_asset_key(meta: SceneMetadata, band: BandInfo) -> str:
    """File stem for a band's COG: its eo common name when unique in the scene, else its delivered name."""
    same_common = [b for b in meta.bands if band.common_name and b.common_name == band.common_name]
    raw = band.common_name if band.common_name and len(same_common) == 1 else band.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._-").lower() or f"band_{band.index}"


def _path_segment(value: str, what: str) -> str:
    if not _SAFE_SEGMENT.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} is not a safe path segment (letters, digits, '.', '_', '-')")
    return value


def cog_layout_path(meta: SceneMetadata, band: str) -> str:
    """Relative COG path per DESIGN.md.

    ``cogs/<collection>/<cell>/<YYYY>/<MM>/<DD>/<scene_id>/bbox_<minx>_<miny>_<maxx>_<maxy>/<band>.tif``
    with the bbox in lon/lat rounded to 4 decimals. The cell is an Earth geohash (5 characters) or
    ``<body>-<hash>`` for other bodies. Scenes without geographic bounds use ``bbox_native_...`` with native
    coordinates; scenes without an acquisition time use ``undated`` instead of the date folders.
    """
    cell = scene_cell_key(meta.body, meta.bounds_geographic)
    date = meta.acquired_at.strftime("%Y/%m/%d") if meta.acquired_at else "undated"
    if meta.bounds_geographic is not None:
        bbox = "bbox_" + "_".join(f"{value:.4f}" for value in meta.bounds_geographic)
    else:
        bbox = "bbox_native_" + "_".join(f"{value:.4f}" for value in meta.bounds_native)
    return "/".join(
        [
            "cogs",
            _path_segment(meta.collection, "collection"),
            cell,
            date,
            _path_segment(meta.scene_id, "scene id"),
            bbox,
            f"{_path_segment(band, 'band')}.tif",
        ]
    )


def convert_scene_to_cogs(
    meta: SceneMetadata,
    files: Mapping[str, Path],
    out_root: Path,
    profile: str = DEFAULT_COG_PROFILE,
) -> dict[str, CogReport]:
    """One COG per band of the scene under ``out_root`` at ``cog_layout_path``; keys are band asset keys."""
    reports: dict[str, CogReport] = {}
    for band in meta.bands:
        key = band_asset_key(meta, band)
        if band.file not in files:
            raise ValueError(f"scene {meta.scene_id}: band {band.name} lives in {band.file!r}, not in files")
        reports[key] = convert_to_cog(
            files[band.file], out_root / cog_layout_path(meta, key), profile=profile, band_index=band.index
        )
    return reports


def validate_cog(path: Path) -> list[str]:
    """Problems of a COG ("error: ..." / "warning: ..."); an empty list means valid, tiled, with overviews."""
    try:
        _, errors, warnings = cog_validate(path, quiet=True)
        with rasterio.open(path) as src:
            has_overviews = bool(src.overviews(1))
    except (RasterioError, OSError) as error:
        return [f"error: {path} cannot be opened as a GeoTIFF ({error})"]
    problems = [f"error: {message}" for message in errors] + [f"warning: {message}" for message in warnings]
    if not has_overviews:
        problems.append("error: no internal overviews")
    return problems


def compare_pixels(
    original: Path, cog: Path, band: int = 1, windows: int = 8, seed: int = 0, cog_band: int = 1
) -> bool:
    """True when ``cog`` band ``cog_band`` equals ``original`` band ``band`` on the same grid.

    Checks size, CRS and transform, then ``windows`` random windows (up to 256x256, always including the
    bottom-right corner where partial tiles live); NaN equals NaN.
    """
    rng = np.random.default_rng(seed)
    with rasterio.open(original) as src, rasterio.open(cog) as dst:
        if (src.width, src.height) != (dst.width, dst.height) or src.crs != dst.crs:
            return False
        if not src.transform.almost_equals(dst.transform):
            return False
        width, height = min(256, src.width), min(256, src.height)
        offsets = [(src.width - width, src.height - height)]
        offsets += [
            (int(rng.integers(0, src.width - width + 1)), int(rng.integers(0, src.height - height + 1)))
            for _ in range(max(0, windows - 1))
        ]
        for col, row in offsets:
            window = Window(col, row, width, height)
            expected = src.read(band, window=window)
            actual = dst.read(cog_band, window=window)
            if not np.array_equal(expected, actual, equal_nan=expected.dtype.kind == "f"):
                return False
    return True
