"""Forest loss between two NDVI rasters of one tile: where vegetated land lost more NDVI than a threshold,
vectorised to polygons with their area in hectares, plus the choice of clear acquisition pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Geod, Transformer
from rasterio.enums import Resampling
from rasterio.features import rasterize, shapes
from rasterio.warp import reproject
from shapely import ops
from shapely.geometry import Polygon, shape

VEGETATED_NDVI = 0.5  # NDVI above which the "before" pixel counts as forest / dense vegetation
CLOUD_REFLECTANCE_THRESHOLD = 0.3  # blue reflectance above which a pixel is taken as cloud

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ForestLossPolygon:
    """One patch of forest loss."""

    geometry_wkb: bytes  # polygon in the NDVI rasters' native (projected) CRS
    geometry_lonlat_wkb: bytes | None  # the same polygon in lon/lat on the body's geographic CRS
    area_ha: float
    before_date: date | None
    after_date: date | None
    mean_ndvi_drop: float
    pixel_count: int
    crs_epsg: int | None


@dataclass(frozen=True, slots=True)
class _Grid:
    crs: rasterio.crs.CRS
    transform: Affine
    width: int
    height: int


def _read_on_grid(path: Path, grid: _Grid | None, resampling: Resampling) -> tuple[np.ndarray, _Grid, dict[str, str]]:
    """Band 1 as float32 with nodata as NaN, reprojected onto ``grid`` when it differs from the file's own."""
    with rasterio.open(path) as src:
        own = _Grid(src.crs, src.transform, src.width, src.height)
        data = src.read(1, masked=True).astype(np.float32).filled(np.nan)
        tags = src.tags()
        if grid is None or (
            own.crs == grid.crs
            and own.transform.almost_equals(grid.transform)
            and (own.width, own.height) == (grid.width, grid.height)
        ):
            return data, own, tags
        aligned = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
        reproject(
            data,
            aligned,
            src_transform=own.transform,
            src_crs=own.crs,
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=resampling,
        )
        return aligned, grid, tags


def _mask_on_grid(mask: np.ndarray | Path | None, grid: _Grid, what: str) -> np.ndarray:
    if mask is None:
        return np.zeros((grid.height, grid.width), dtype=bool)
    if isinstance(mask, np.ndarray):
        if mask.shape != (grid.height, grid.width):
            raise ValueError(
                f"{what} has shape {mask.shape} but the before NDVI grid is {(grid.height, grid.width)}; "
                "pass the mask as a raster path so it can be reprojected"
            )
        return mask.astype(bool)
    values, _, _ = _read_on_grid(Path(mask), grid, Resampling.nearest)
    return np.nan_to_num(values, nan=0.0) != 0


def _open_3x3(mask: np.ndarray) -> np.ndarray:
    """Binary opening with a 3x3 square: removes speckle and one-pixel bridges, keeps solid patches intact."""

    def shifted(values: np.ndarray, fill: bool) -> list[np.ndarray]:
        padded = np.pad(values, 1, constant_values=fill)
        rows, cols = values.shape
        return [padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr in (-1, 0, 1) for dc in (-1, 0, 1)]

    eroded = np.logical_and.reduce(shifted(mask, True))
    return np.logical_or.reduce(shifted(eroded, False))


def _area_factor_m2(crs: CRS) -> float | None:
    """Square metres per squared CRS unit for projected CRS, None for geographic ones."""
    if crs.is_geographic:
        return None
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return factor * factor


def _date_from_tags(tags: dict[str, str]) -> date | None:
    text = tags.get("ACQUISITION_TIME")
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def detect_forest_loss(
    before_ndvi_path: Path,
    after_ndvi_path: Path,
    threshold: float = 0.3,
    min_area_ha: float = 0.5,
    before_cloud_mask: np.ndarray | Path | None = None,
    after_cloud_mask: np.ndarray | Path | None = None,
    vegetated_ndvi: float = VEGETATED_NDVI,
    cleanup: bool = True,
    before_date: date | None = None,
    after_date: date | None = None,
) -> list[ForestLossPolygon]:
    """Polygons where ``before - after > threshold`` and the before NDVI exceeded ``vegetated_ndvi``.

    The after raster (and masks given as paths) are reprojected onto the before grid when it differs.
    Cloud masks are True/non-zero where a pixel is cloud; those pixels never count as loss. ``cleanup``
    applies a 3x3 binary opening. Polygons smaller than ``min_area_ha`` are dropped; areas come from the
    projected CRS (metres) or geodesically on geographic CRS. Dates default to the rasters'
    ACQUISITION_TIME tags. Sorted by area, largest first.
    """
    before, grid, before_tags = _read_on_grid(before_ndvi_path, None, Resampling.bilinear)
    after, _, after_tags = _read_on_grid(after_ndvi_path, grid, Resampling.bilinear)
    clouds = _mask_on_grid(before_cloud_mask, grid, "before_cloud_mask") | _mask_on_grid(
        after_cloud_mask, grid, "after_cloud_mask"
    )
    drop = before - after
    with np.errstate(invalid="ignore"):
        loss = np.isfinite(drop) & ~clouds & (before > vegetated_ndvi) & (drop > threshold)
    if cleanup:
        loss = _open_3x3(loss)
    if not loss.any():
        return []
    crs = CRS.from_wkt(grid.crs.to_wkt())
    factor = _area_factor_m2(crs)
    geod = Geod(ellps="WGS84") if factor is None and crs.ellipsoid is None else None
    if factor is None and geod is None:
        geod = Geod(a=crs.ellipsoid.semi_major_metre, b=crs.ellipsoid.semi_minor_metre)
    geodetic = crs.geodetic_crs
    to_lonlat = Transformer.from_crs(crs, geodetic, always_xy=True) if geodetic is not None else None
    polygons: list[Polygon] = []
    areas: list[float] = []
    for geometry, _ in shapes(loss.astype(np.uint8), mask=loss, transform=grid.transform):
        polygon = shape(geometry)
        if factor is not None:
            area_ha = polygon.area * factor / 10_000
        else:
            area_ha = abs(geod.geometry_area_perimeter(polygon)[0]) / 10_000  # type: ignore[union-attr]
        if area_ha >= min_area_ha:
            polygons.append(polygon)
            areas.append(area_ha)
    if not polygons:
        return []
    labels = rasterize(
        [(polygon, index + 1) for index, polygon in enumerate(polygons)],
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=0,
        dtype="int32",
    )
    in_loss = labels > 0
    sums = np.bincount(labels[in_loss], weights=drop[in_loss], minlength=len(polygons) + 1)
    counts = np.bincount(labels[in_loss], minlength=len(polygons) + 1)
    before_day = before_date or _date_from_tags(before_tags)
    after_day = after_date or _date_from_tags(after_tags)
    results = [
        ForestLossPolygon(
            geometry_wkb=polygon.wkb,
            geometry_lonlat_wkb=ops.transform(to_lonlat.transform, polygon).wkb if to_lonlat else None,
            area_ha=area,
            before_date=before_day,
            after_date=after_day,
            mean_ndvi_drop=float(sums[index + 1] / counts[index + 1]) if counts[index + 1] else float("nan"),
            pixel_count=int(counts[index + 1]),
            crs_epsg=crs.to_epsg(),
        )
        for index, (polygon, area) in enumerate(zip(polygons, areas, strict=True))
    ]
    return sorted(results, key=lambda item: item.area_ha, reverse=True)


def bright_cloud_mask(
    scene_path: Path,
    band: int = 1,
    scale: float = 1e-4,
    offset: float = 0.0,
    threshold: float = CLOUD_REFLECTANCE_THRESHOLD,
    dilate_pixels: int = 2,
) -> np.ndarray:
    """Cloud mask of a scene from one visible band (blue by default): reflectance above ``threshold``,
    grown by ``dilate_pixels`` to cover soft cloud edges. Clouds are bright in every visible band; land,
    water and most urban surfaces stay below 0.3 in blue."""
    with rasterio.open(scene_path) as src:
        reflectance = src.read(band).astype(np.float64) * scale + offset
    mask = reflectance > threshold
    for _ in range(dilate_pixels):
        padded = np.pad(mask, 1, constant_values=False)
        rows, cols = mask.shape
        mask = np.logical_or.reduce(
            [padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
        )
    return mask


def select_clear_pairs(
    acquisitions: Sequence[tuple[date, float | None, T]], max_cloud: float = 20.0
) -> list[tuple[tuple[date, float | None, T], tuple[date, float | None, T]]]:
    """Successive pairs of clear acquisitions of one tile, oldest first.

    An acquisition (date or datetime, cloud cover percent, payload such as a path) is clear when its cloud
    cover is known and at most ``max_cloud``. Of several clear acquisitions on one day the least cloudy is
    kept. Each pair is (earlier, next clear one), so a cloudy date in between is skipped, not paired.
    """
    clear = [item for item in acquisitions if item[1] is not None and item[1] <= max_cloud]
    by_day: dict[date, tuple[date, float | None, T]] = {}
    for item in clear:
        day = item[0].date() if isinstance(item[0], datetime) else item[0]
        kept = by_day.get(day)
        if kept is None or (item[1] or 0.0) < (kept[1] or 0.0):
            by_day[day] = item
    ordered = [by_day[day] for day in sorted(by_day)]
    return list(pairwise(ordered))
