"""Synthetic scenes for demos and tests: 4-band UTM GeoTIFFs of the same tiles over time, with clouds and a
forest clearing, plus a small Mars raster. Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satlake.scenes.bands import SYNTHETIC_PLATFORM

BAND_NAMES = ("blue", "green", "red", "nir")
REFLECTANCE_SCALE = 10_000  # DN = reflectance * 10000, the usual surface-reflectance convention
NODATA_DN = 0
DEFAULT_DATES = (
    datetime(2024, 5, 2, 10, 0, tzinfo=UTC),
    datetime(2024, 6, 11, 10, 0, tzinfo=UTC),
    datetime(2024, 7, 21, 10, 0, tzinfo=UTC),
    datetime(2024, 8, 30, 10, 0, tzinfo=UTC),
)
PIXEL_SIZE_M = 10.0
# Surface reflectance (blue, green, red, nir) of each land cover, typical of mid-latitude summer imagery.
LAND_COVER_REFLECTANCE = {
    "water": (0.060, 0.050, 0.030, 0.020),
    "forest": (0.030, 0.060, 0.030, 0.350),
    "grassland": (0.050, 0.090, 0.070, 0.250),
    "bare_soil": (0.100, 0.140, 0.180, 0.250),
    "urban": (0.120, 0.130, 0.140, 0.180),
    "clearing": (0.080, 0.110, 0.140, 0.220),  # freshly cut forest: soil and slash
}
CLOUD_REFLECTANCE = (0.55, 0.55, 0.56, 0.58)
_LAND_COVER_CODES = {name: code for code, name in enumerate(LAND_COVER_REFLECTANCE)}
_UTM_ZONES = (32633, 32634, 32635, 32632)


@dataclass(frozen=True, slots=True)
class ClearingPlan:
    """Where and when the synthetic forest is cut (pixel rectangle on tile 0)."""

    row: int
    col: int
    rows: int
    cols: int
    date_index: int  # first date index on which the forest is gone

    def area_ha(self, pixel_size_m: float = PIXEL_SIZE_M) -> float:
        return self.rows * self.cols * pixel_size_m**2 / 10_000


def clearing_plan(size: int, dates: int) -> ClearingPlan:
    """The clearing of tile 0: a rectangle of 15% x 12% of the tile, cut before the middle date."""
    rows, cols = max(8, int(size * 0.12)), max(8, int(size * 0.15))
    return ClearingPlan(row=int(size * 0.55), col=int(size * 0.2), rows=rows, cols=cols, date_index=max(1, dates // 2))


def cloud_fraction_plan(tile: int, date_index: int, dates: int) -> float:
    """Target cloud fraction: tile 0 heavily clouded on its second date, tile 1 lightly on the middle one."""
    if tile == 0 and date_index == 1 and dates > 2:
        return 0.45
    if tile == 1 and date_index == dates // 2:
        return 0.10
    return 0.0


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Zero-mean, unit-variance noise smooth over ``cell`` pixels (bilinear upsampling of a coarse grid)."""
    coarse_size = size // cell + 2
    coarse = rng.standard_normal((coarse_size, coarse_size))
    positions = np.arange(size) / cell
    index = positions.astype(int)
    weight = positions - index
    rows_top, rows_bottom = coarse[index], coarse[index + 1]  # (size, coarse_size) each
    by_row = rows_top * (1 - weight)[:, None] + rows_bottom * weight[:, None]
    field = by_row[:, index] * (1 - weight)[None, :] + by_row[:, index + 1] * weight[None, :]
    return (field - field.mean()) / field.std()


def _land_cover(rng: np.random.Generator, size: int, plan: ClearingPlan | None) -> np.ndarray:
    wetness = _smooth_noise(rng, size, 96)
    vegetation = _smooth_noise(rng, size, 64) + 0.3 * _smooth_noise(rng, size, 16)
    settlement = _smooth_noise(rng, size, 128)
    cover = np.full((size, size), _LAND_COVER_CODES["grassland"], dtype=np.uint8)
    cover[vegetation < np.quantile(vegetation, 0.25)] = _LAND_COVER_CODES["bare_soil"]
    cover[vegetation > np.quantile(vegetation, 0.55)] = _LAND_COVER_CODES["forest"]
    cover[settlement > np.quantile(settlement, 0.93)] = _LAND_COVER_CODES["urban"]
    cover[wetness > np.quantile(wetness, 0.92)] = _LAND_COVER_CODES["water"]
    if plan is not None:
        # The plot to be cut is forest with a forest margin, so the loss polygon has exactly the plan's size.
        margin = 6
        cover[
            max(0, plan.row - margin) : plan.row + plan.rows + margin,
            max(0, plan.col - margin) : plan.col + plan.cols + margin,
        ] = _LAND_COVER_CODES["forest"]
    return cover


def _surface(cover: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """(4, rows, cols) reflectance of a land-cover map with per-pixel texture."""
    table = np.array(list(LAND_COVER_REFLECTANCE.values()), dtype=np.float64)  # (classes, bands)
    reflectance = table[cover].transpose(2, 0, 1)
    return reflectance * (1.0 + 0.06 * texture)[None, :, :]


def _clouds(rng: np.random.Generator, size: int, fraction: float) -> np.ndarray:
    """Cloud opacity 0..1 covering ``fraction`` of the tile, with a soft 1-2 pixel edge."""
    if fraction <= 0:
        return np.zeros((size, size))
    field = _smooth_noise(rng, size, 48) + 0.25 * _smooth_noise(rng, size, 12)
    threshold = np.quantile(field, 1.0 - fraction)
    return np.clip((field - threshold) / 0.08, 0.0, 1.0)


def make_synthetic_scenes(
    out_dir: Path,
    tiles: int = 2,
    dates: Sequence[datetime] = DEFAULT_DATES,
    size: int = 512,
    seed: int = 0,
) -> list[Path]:
    """Write one 4-band uint16 GeoTIFF per tile and date into ``out_dir``; returns their paths.

    Tiles are 10 m UTM grids (EPSG:32633, 32634, ...). Bands are blue, green, red, nir surface reflectance
    x 10000 (nodata 0) over water, forest, grassland, bare soil and urban land. Tags: ACQUISITION_TIME (ISO
    UTC), PLATFORM ``satlake-sim``, CLOUD_COVER (true percentage of clouded pixels), TILE; tile 0 loses a
    forest plot (``clearing_plan``) before its middle date and its later scenes carry the cleared area in
    SIMULATED_CLEARED_AREA_HA. File names: ``sim_t<tile>_<YYYYMMDD>.tif``.
    """
    if not 1 <= tiles <= len(_UTM_ZONES):
        raise ValueError(f"tiles must be 1..{len(_UTM_ZONES)}, got {tiles}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered_dates = sorted(date.astimezone(UTC) for date in dates)
    plan = clearing_plan(size, len(ordered_dates))
    written: list[Path] = []
    for tile in range(tiles):
        tile_rng = np.random.default_rng([seed, tile])
        cover = _land_cover(tile_rng, size, plan if tile == 0 else None)
        texture = _smooth_noise(tile_rng, size, 4)
        transform = from_origin(420_000.0 + 7_000.0 * tile, 5_600_000.0, PIXEL_SIZE_M, PIXEL_SIZE_M)
        for date_index, moment in enumerate(ordered_dates):
            date_rng = np.random.default_rng([seed, tile, date_index, 1])
            scene_cover = cover.copy()
            cleared = tile == 0 and date_index >= plan.date_index
            if cleared:
                scene_cover[plan.row : plan.row + plan.rows, plan.col : plan.col + plan.cols] = _LAND_COVER_CODES[
                    "clearing"
                ]
            reflectance = _surface(scene_cover, texture)
            reflectance *= 1.0 + date_rng.normal(0.0, 0.02)  # illumination differs a little between dates
            reflectance += date_rng.normal(0.0, 0.003, reflectance.shape)  # sensor noise
            opacity = _clouds(date_rng, size, cloud_fraction_plan(tile, date_index, len(ordered_dates)))
            cloud = np.array(CLOUD_REFLECTANCE)[:, None, None]
            reflectance = reflectance * (1.0 - opacity) + cloud * opacity
            dn = np.clip(np.round(reflectance * REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
            tags = {
                "ACQUISITION_TIME": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "PLATFORM": SYNTHETIC_PLATFORM,
                "CLOUD_COVER": f"{100.0 * float((opacity > 0).mean()):.2f}",
                "TILE": f"t{tile:02d}",
            }
            if cleared:
                tags["SIMULATED_CLEARED_AREA_HA"] = f"{plan.area_ha():.4f}"
            path = out_dir / f"sim_t{tile:02d}_{moment:%Y%m%d}.tif"
            _write_multiband(path, dn, CRS.from_epsg(_UTM_ZONES[tile]), transform, tags)
            written.append(path)
    return written


def _write_multiband(path: Path, data: np.ndarray, crs: CRS, transform: object, tags: dict[str, str]) -> None:
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": data.shape[0],
        "width": data.shape[2],
        "height": data.shape[1],
        "crs": crs,
        "transform": transform,
        "nodata": NODATA_DN,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
        "predictor": 2,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        for index, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(index, name)
            dst.update_tags(index, common_name=name)


MARS_CRS = "IAU_2015:49910"  # Mars (2015) sphere, planetocentric, equirectangular, centred on 0°E
MARS_RADIUS_M = 3_396_190.0


def make_mars_scene(out_path: Path, size: int = 64, center_lon: float = 137.4, center_lat: float = -4.6) -> Path:
    """Write a small single-band uint16 raster in Mars equirectangular (IAU_2015:49910), near Gale crater
    by default, 463 m pixels; tagged ACQUISITION_TIME and PLATFORM ``satlake-sim-mars``."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pixel = 463.0
    metres_per_degree = np.pi * MARS_RADIUS_M / 180.0
    left = center_lon * metres_per_degree - size * pixel / 2
    top = center_lat * metres_per_degree + size * pixel / 2
    rng = np.random.default_rng(49910)
    albedo = (2000 + 800 * _smooth_noise(rng, size, 8)).clip(1, 65535).astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 1,
        "width": size,
        "height": size,
        "crs": CRS.from_user_input(MARS_CRS),
        "transform": from_origin(left, top, pixel, pixel),
        "nodata": 0,
    }
    with rasterio.open(out_path, "w", **profile) as dst:
        dst.write(albedo, 1)
        dst.update_tags(ACQUISITION_TIME="2024-03-01T12:00:00Z", PLATFORM="satlake-sim-mars")
        dst.set_band_description(1, "albedo")
    return out_path
