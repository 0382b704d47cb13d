"""Cloud-Optimized GeoTIFFs: named profiles, conversion one band per file, the storage layout, and checks.

Conversion runs GDAL's own COG driver (through rasterio): it streams from the source through a temporary
overview file, so a raster larger than memory converts, and its overviews are the ones ``gdal_translate -of COG``
writes (each level half the previous one, rounded down), pixel for pixel. rio-cogeo validates the result. The
COG is written next to its destination and renamed into place, so a crash never leaves a half-written COG at
its final path.
"""

from __future__ import annotations

import math
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.dtypes import dtype_rev, typename_fwd
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate

from satlake.scenes.cells import scene_cell_key
from satlake.scenes.metadata import BandInfo, SceneMetadata

COG_BLOCK_SIZE = 512
MIN_COG_BLOCK_SIZE = 64
PREDICTOR_FOR_INTEGERS = 2  # horizontal differencing
PREDICTOR_FOR_FLOATS = 3  # floating-point predictor

# Creation options of GDAL's COG driver (https://gdal.org/drivers/raster/cog.html), all lossless.
COG_PROFILES: dict[str, dict[str, Any]] = {
    "deflate": {"compress": "DEFLATE", "level": 6},
    "zstd": {"compress": "ZSTD", "level": 9},
    "lzw": {"compress": "LZW"},
}
DEFAULT_COG_PROFILE = "deflate"
# The COG driver's OVERVIEW_RESAMPLING values.
OVERVIEW_RESAMPLINGS = ("nearest", "average", "rms", "bilinear", "cubic", "cubicspline", "lanczos", "mode")
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
    """COG driver creation options for ``profile`` with the predictor for ``dtype`` and a tile size that fits.

    Rasters smaller than two tiles get smaller tiles (down to 64) so they still carry one overview level.
    """
    if profile not in COG_PROFILES:
        raise ValueError(f"unknown COG profile {profile!r}; choose one of {sorted(COG_PROFILES)}")
    options = dict(COG_PROFILES[profile])
    options["predictor"] = PREDICTOR_FOR_FLOATS if np.dtype(dtype).kind == "f" else PREDICTOR_FOR_INTEGERS
    block = COG_BLOCK_SIZE
    while block > MIN_COG_BLOCK_SIZE and max(width, height) < 2 * block:
        block //= 2
    options["blocksize"] = block
    options["overview_count"] = overview_count(width, height, block)
    return options


def overview_count(width: int, height: int, block: int) -> int:
    """Overview levels, each half the previous one rounded down as GDAL's COG driver sizes them, until the
    smallest fits in one tile; at least one so every COG has overviews."""
    level, size = 0, max(width, height)
    while size > block:
        size //= 2
        level += 1
    return max(level, 1)


def _add_metadata(element: ET.Element, tags: Mapping[str, str]) -> None:
    if tags:
        metadata = ET.SubElement(element, "Metadata")
        for key, value in tags.items():
            ET.SubElement(metadata, "MDI", key=key).text = value


def single_band_vrt(src: DatasetReader, band_index: int) -> str:
    """A VRT document exposing band ``band_index`` of ``src`` as a one-band raster, with the dataset's and the
    band's metadata, description, nodata, scale, offset, unit and color table (what ``gdal_translate -b`` keeps).
    """
    root = ET.Element("VRTDataset", rasterXSize=str(src.width), rasterYSize=str(src.height))
    if src.crs is not None:
        ET.SubElement(root, "SRS").text = src.crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(float(v)) for v in src.transform.to_gdal())
    _add_metadata(root, src.tags())
    dtype = src.dtypes[band_index - 1]
    band = ET.SubElement(root, "VRTRasterBand", dataType=typename_fwd[dtype_rev[dtype]], band="1")
    if src.descriptions[band_index - 1]:
        ET.SubElement(band, "Description").text = src.descriptions[band_index - 1]
    _add_metadata(band, src.tags(band_index))
    nodata = src.nodatavals[band_index - 1]
    if nodata is not None:
        ET.SubElement(band, "NoDataValue").text = "nan" if math.isnan(nodata) else repr(nodata)
    palette = src.colorinterp[band_index - 1] is ColorInterp.palette
    ET.SubElement(band, "ColorInterp").text = "Palette" if palette else "Gray"
    if palette:
        table = ET.SubElement(band, "ColorTable")
        for _, rgba in sorted(src.colormap(band_index).items()):
            ET.SubElement(table, "Entry", c1=str(rgba[0]), c2=str(rgba[1]), c3=str(rgba[2]), c4=str(rgba[3]))
    if src.units[band_index - 1]:
        ET.SubElement(band, "UnitType").text = src.units[band_index - 1]
    ET.SubElement(band, "Offset").text = repr(float(src.offsets[band_index - 1]))
    ET.SubElement(band, "Scale").text = repr(float(src.scales[band_index - 1]))
    source = ET.SubElement(band, "SimpleSource")
    ET.SubElement(source, "SourceFilename", relativeToVRT="0").text = str(Path(src.name).resolve())
    ET.SubElement(source, "SourceBand").text = str(band_index)
    return ET.tostring(root, encoding="unicode")


def convert_to_cog(
    src_path: Path,
    dst_path: Path,
    profile: str = DEFAULT_COG_PROFILE,
    overview_resampling: str = "average",
    band_index: int | None = None,
) -> CogReport:
    """Write ``src_path`` (all bands, or only ``band_index``) as a COG at ``dst_path``.

    Pixels are copied unchanged (lossless profiles only); nodata, dataset tags, band descriptions and band
    tags are kept.
    """
    if overview_resampling not in OVERVIEW_RESAMPLINGS:
        raise ValueError(f"unknown overview resampling {overview_resampling!r}; choose one of {OVERVIEW_RESAMPLINGS}")
    started = time.perf_counter()
    dst_path = Path(dst_path)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src_path) as src:
        if band_index is not None and not 1 <= band_index <= src.count:
            raise ValueError(f"{src_path}: band {band_index} does not exist (the file has {src.count} bands)")
        dtype = src.dtypes[(band_index or 1) - 1]
        options = cog_creation_options(profile, dtype, src.width, src.height)
        source = src.name if band_index is None or src.count == 1 else single_band_vrt(src, band_index)
    partial = dst_path.with_name(f".{dst_path.name}.partial")
    try:
        # Everything the COG keeps fits in its TIFF tags; no .aux.xml sidecar may stay behind the renamed file.
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):
            rasterio.shutil.copy(
                source, partial, driver="COG", overview_resampling=overview_resampling.upper(), **options
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
