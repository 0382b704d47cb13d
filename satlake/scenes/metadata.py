"""The scene metadata contract: what raw/scenes records about a landed raster and what the catalog reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BandInfo:
    """One band of a scene: where its pixels live and what they mean."""

    index: int  # 1-based band index inside ``file``
    file: str  # file name relative to the scene folder (one multi-band GeoTIFF, or one file per band)
    name: str  # band name as delivered, e.g. "B4" or "band_3"
    common_name: str | None  # STAC eo common name: coastal, blue, green, red, nir, swir16, ...
    dtype: str  # numpy dtype name, e.g. "uint16"
    nodata: float | None
    center_wavelength_um: float | None = None
    scale: float | None = None  # reflectance = DN * scale + offset, where known
    offset: float | None = None


@dataclass(frozen=True, slots=True)
class SceneFile:
    """One original file of a scene as kept in the raw zone."""

    name: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SceneMetadata:
    """Everything satlake knows about a scene after reading its files (never mutated after raw/scenes)."""

    scene_id: str
    collection: str
    body: str  # "earth", "mars", "moon", ...: the target body of the CRS's datum
    crs_wkt: str
    crs_epsg: int | None
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f
    bounds_native: tuple[float, float, float, float]  # minx, miny, maxx, maxy in the native CRS
    # lon/lat bounds on the body's own geographic CRS (west, south, east, north); None when not computable.
    bounds_geographic: tuple[float, float, float, float] | None
    footprint_geographic_wkt: str | None  # polygon in lon/lat on the body (may be split at the antimeridian)
    bands: tuple[BandInfo, ...]
    files: tuple[SceneFile, ...]
    acquired_at: datetime | None  # timezone-aware UTC
    platform: str | None = None  # e.g. "landsat-8"
    instrument: str | None = None  # e.g. "oli"
    cloud_cover: float | None = None  # percent 0..100
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    off_nadir: float | None = None
    extra: dict[str, str] = field(default_factory=dict)  # other tags worth keeping (MTL ids, processing level)
