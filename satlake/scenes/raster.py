"""Reading landed rasters into SceneMetadata: grid, CRS, target body, footprint on that body, bands, hashes.

Every failure of a file (not a TIFF, truncated, no CRS, absurd size, ...) is raised as RasterReadError naming
the file and the reason, so the caller can quarantine the scene without crashing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window
from shapely import affinity
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import make_valid

from satlake.scenes.cells import body_of_crs, geohash_encode, scene_cell_key
from satlake.scenes.grouping import ACQUIRED_MANIFEST_NAME, ManifestError, acquired_manifest_files
from satlake.scenes.metadata import BandInfo, SceneFile, SceneMetadata
from satlake.scenes.mtl import MtlGroup, MtlParseError, landsat_metadata_from_mtl, parse_mtl

__all__ = [
    "RasterReadError",
    "file_sha256",
    "geographic_footprint",
    "geohash_encode",
    "read_scene_metadata",
    "scene_cell_key",
]

HASH_CHUNK_BYTES = 1 << 20
MAX_RASTER_SIDE = 1 << 20  # 1,048,576 pixels: larger declared sides are corrupt headers, not imagery
MAX_BANDS = 1000
EDGE_DENSIFY_POINTS = 64  # points per raster edge when projecting the outline to lon/lat
# Densified outlines are simplified back to what changes the shape by more than ~1 m on Earth.
FOOTPRINT_SIMPLIFY_DEGREES = 1e-5

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_RASTER_NAME = re.compile(r"\.tiff?$", re.IGNORECASE)
_MTL_NAME = re.compile(r"_MTL\.txt$", re.IGNORECASE)
_LANDSAT_BAND_NAME = re.compile(r"_(?:(?:SR|ST)_)?B(\d{1,2})\.TIFF?$", re.IGNORECASE)

# STAC eo common names and centre wavelengths (micrometres) of Landsat bands, by sensor family.
_LANDSAT_OLI_BANDS = {
    "B1": ("coastal", 0.443),
    "B2": ("blue", 0.482),
    "B3": ("green", 0.561),
    "B4": ("red", 0.655),
    "B5": ("nir", 0.865),
    "B6": ("swir16", 1.609),
    "B7": ("swir22", 2.201),
    "B8": ("pan", 0.590),
    "B9": ("cirrus", 1.373),
    "B10": ("lwir11", 10.895),
    "B11": ("lwir12", 12.005),
}
_LANDSAT_TM_ETM_BANDS = {
    "B1": ("blue", 0.485),
    "B2": ("green", 0.560),
    "B3": ("red", 0.660),
    "B4": ("nir", 0.835),
    "B5": ("swir16", 1.650),
    "B6": ("lwir", 11.450),
    "B7": ("swir22", 2.220),
    "B8": ("pan", 0.710),
}
_COMMON_NAME_ALIASES = {
    "coastal": "coastal",
    "blue": "blue",
    "green": "green",
    "red": "red",
    "yellow": "yellow",
    "rededge": "rededge",
    "pan": "pan",
    "nir": "nir",
    "nir08": "nir08",
    "nir09": "nir09",
    "near-infrared": "nir",
    "near_infrared": "nir",
    "near infrared": "nir",
    "cirrus": "cirrus",
    "swir16": "swir16",
    "swir1": "swir16",
    "swir22": "swir22",
    "swir2": "swir22",
    "lwir": "lwir",
    "lwir11": "lwir11",
    "lwir12": "lwir12",
}
_COLORINTERP_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}
SYNTHETIC_PLATFORM = "satlake-sim"
_SYNTHETIC_BAND_ORDER = ("blue", "green", "red", "nir")


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
class _RasterFile:
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


def file_sha256(path: Path, chunk_bytes: int = HASH_CHUNK_BYTES) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks so large scenes never sit in memory."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise RasterReadError(path.name, f"file cannot be read ({error.strerror or error})") from error
    return digest.hexdigest(), size


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


def _open_raster(name: str, path: Path) -> _RasterFile:
    _check_tiff_magic(name, path)
    try:
        with (
            warnings.catch_warnings(),
            rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
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
            _read_probe_blocks(src)
            return _RasterFile(
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


def _read_probe_blocks(src: rasterio.DatasetReader) -> None:
    """Decode the first and last block of every band: a truncated file opens fine but fails here."""
    block_height, block_width = src.block_shapes[0]
    last_row = max(0, src.height - block_height)
    last_col = max(0, src.width - block_width)
    for window in (
        Window(0, 0, min(block_width, src.width), min(block_height, src.height)),
        Window(last_col, last_row, src.width - last_col, src.height - last_row),
    ):
        src.read(window=window)


def _pixel_outline(width: int, height: int, points_per_edge: int) -> np.ndarray:
    """Closed ring of pixel coordinates (col, row) along the raster's edge, ``points_per_edge`` per side."""
    steps = np.linspace(0.0, 1.0, points_per_edge, endpoint=False)
    top = np.column_stack([steps * width, np.zeros_like(steps)])
    right = np.column_stack([np.full_like(steps, width), steps * height])
    bottom = np.column_stack([(1 - steps) * width, np.full_like(steps, height)])
    left = np.column_stack([np.zeros_like(steps), (1 - steps) * height])
    ring = np.vstack([top, right, bottom, left])
    return np.vstack([ring, ring[:1]])


def _wrap_lon(lon: float) -> float:
    wrapped = ((lon + 180.0) % 360.0) - 180.0
    return 180.0 if wrapped == -180.0 and lon > 0 else wrapped


def _split_at_antimeridian(geometry: BaseGeometry) -> BaseGeometry:
    """Cut a polygon drawn with continuous longitudes into pieces inside [-180, 180]."""
    world = box(-180.0, -90.0, 180.0, 90.0)
    pieces = []
    for turns in range(-2, 3):
        piece = affinity.translate(geometry, xoff=360.0 * turns).intersection(world)
        if not piece.is_empty and piece.area > 0:
            pieces.append(piece)
    merged = unary_union(pieces)
    polygons = [g for g in getattr(merged, "geoms", [merged]) if isinstance(g, Polygon) and g.area > 0]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def geographic_footprint(
    crs: CRS, transform: Affine, width: int, height: int, points_per_edge: int = EDGE_DENSIFY_POINTS
) -> tuple[tuple[float, float, float, float], BaseGeometry] | None:
    """Bounds (west, south, east, north) and footprint of a raster on its body's geographic CRS.

    The outline is densified before projection. A footprint crossing the antimeridian becomes a MultiPolygon
    split at ±180 and its bounds have west > east (the STAC convention); a footprint around a pole reaches
    that pole and spans all longitudes. Returns None when the CRS has no geographic counterpart or the
    outline does not project.
    """
    geodetic = crs.geodetic_crs
    if geodetic is None:
        return None
    try:
        to_lonlat = Transformer.from_crs(crs, geodetic, always_xy=True)
        to_native = Transformer.from_crs(geodetic, crs, always_xy=True)
        pixels = _pixel_outline(width, height, points_per_edge)
        xs, ys = transform @ (pixels[:, 0], pixels[:, 1])
        lons, lats = to_lonlat.transform(np.asarray(xs), np.asarray(ys), errcheck=False)
    except (ProjError, CRSError):
        return None
    lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
    finite = np.isfinite(lons) & np.isfinite(lats)
    if finite.sum() < 4:
        return None
    lons, lats = lons[finite], lats[finite]
    lats = np.clip(lats, -90.0, 90.0)
    unwrapped = np.degrees(np.unwrap(np.radians(lons)))
    native_outline = Polygon(np.column_stack([np.asarray(xs)[finite], np.asarray(ys)[finite]]))
    enclosed_pole = None
    for pole_lat in (90.0, -90.0):
        px, py = to_native.transform(0.0, pole_lat, errcheck=False)
        if math.isfinite(px) and math.isfinite(py) and make_valid(native_outline).contains(Point(px, py)):
            enclosed_pole = pole_lat
    if enclosed_pole is not None:
        # The outline winds once around the pole: close it along the pole's latitude line.
        ring = [
            *zip(unwrapped, lats, strict=True),
            (unwrapped[-1], enclosed_pole),
            (unwrapped[0], enclosed_pole),
        ]
        footprint = _split_at_antimeridian(make_valid(Polygon(ring)))
        south = min(float(lats.min()), enclosed_pole)
        north = max(float(lats.max()), enclosed_pole)
        return (-180.0, south, 180.0, north), footprint
    outline = make_valid(Polygon(np.column_stack([unwrapped, lats])))
    footprint = _split_at_antimeridian(outline)
    min_lon, max_lon = float(unwrapped.min()), float(unwrapped.max())
    if max_lon - min_lon >= 360.0:
        west, east = -180.0, 180.0
    elif min_lon >= -180.0 and max_lon <= 180.0:
        west, east = min_lon, max_lon
    else:
        west, east = _wrap_lon(min_lon), _wrap_lon(max_lon)
    return (west, float(lats.min()), east, float(lats.max())), footprint


def _parse_time(text: str) -> datetime | None:
    text = text.strip()
    for parse in (
        lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")),
        lambda t: datetime.strptime(t, "%Y:%m:%d %H:%M:%S"),  # TIFFTAG_DATETIME
    ):
        try:
            moment = parse(text)
        except ValueError:
            continue
        # Times without a zone are taken as UTC: that is how satellite products and our tags are written.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _parse_cloud_cover(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if 0.0 <= value <= 100.0 else None


def _common_name(raster: _RasterFile, band: int) -> str | None:
    tags = raster.band_tags[band - 1]
    candidates = [
        tags.get("common_name"),
        tags.get("COMMON_NAME"),
        tags.get("BAND_NAME"),
        raster.descriptions[band - 1],
    ]
    for candidate in candidates:
        if candidate and candidate.strip().lower() in _COMMON_NAME_ALIASES:
            return _COMMON_NAME_ALIASES[candidate.strip().lower()]
    if raster.colorinterp[band - 1] in _COLORINTERP_NAMES:
        return _COLORINTERP_NAMES[raster.colorinterp[band - 1]]
    if raster.tags.get("PLATFORM") == SYNTHETIC_PLATFORM and len(raster.dtypes) == len(_SYNTHETIC_BAND_ORDER):
        return _SYNTHETIC_BAND_ORDER[band - 1]
    return None


def _landsat_table(scene_id: str, platform: str | None) -> dict[str, tuple[str, float]]:
    if (platform or "").lower() in ("landsat-4", "landsat-5", "landsat-7") or scene_id.upper()[:4] in (
        "LT04",
        "LT05",
        "LE07",
    ):
        return _LANDSAT_TM_ETM_BANDS
    return _LANDSAT_OLI_BANDS


def _landsat_band_id(name: str) -> str | None:
    match = _LANDSAT_BAND_NAME.search(name)
    return f"B{int(match.group(1))}" if match else None


def _reference_raster(rasters: list[_RasterFile]) -> _RasterFile:
    """The grid a scene is described on: its first non-panchromatic band file (Landsat B8 is finer)."""
    for raster in rasters:
        if _landsat_band_id(raster.name) != "B8":
            return raster
    return rasters[0]


def _bands_for(
    rasters: list[_RasterFile], scene_id: str, mtl_fields: dict[str, Any] | None, platform: str | None
) -> tuple[BandInfo, ...]:
    landsat_table = _landsat_table(scene_id, platform)
    reflectance = (mtl_fields or {}).get("reflectance", {})
    bands: list[BandInfo] = []
    for raster in rasters:
        landsat_id = _landsat_band_id(raster.name)
        for index in range(1, len(raster.dtypes) + 1):
            scale = raster.scales[index - 1]
            offset = raster.offsets[index - 1]
            info = {
                "index": index,
                "file": raster.name,
                "dtype": raster.dtypes[index - 1],
                "nodata": raster.nodatavals[index - 1],
                "scale": scale if scale != 1.0 else None,
                "offset": offset if offset != 0.0 else None,
            }
            if landsat_id is not None and len(raster.dtypes) == 1:
                common, wavelength = landsat_table.get(landsat_id, (None, None))
                mult_add = reflectance.get(landsat_id)
                if mult_add is not None:
                    info["scale"], info["offset"] = mult_add
                bands.append(BandInfo(name=landsat_id, common_name=common, center_wavelength_um=wavelength, **info))
            else:
                name = raster.descriptions[index - 1] or f"band_{index}"
                bands.append(BandInfo(name=name, common_name=_common_name(raster, index), **info))
    return tuple(bands)


def _raster_names_in_order(files: Mapping[str, Path]) -> list[str]:
    names = [name for name in files if _RASTER_NAME.search(name)]

    def order(name: str) -> tuple[int, str]:
        band = _landsat_band_id(name)
        return (int(band[1:]) if band else 0, name)

    return sorted(names, key=order)


def _mtl_from_files(files: Mapping[str, Path]) -> MtlGroup | None:
    for name, path in files.items():
        if _MTL_NAME.search(name):
            try:
                return parse_mtl(path.read_text(encoding="utf-8", errors="replace"))
            except MtlParseError as error:
                raise RasterReadError(name, str(error)) from error
            except OSError as error:
                raise RasterReadError(name, f"file cannot be read ({error.strerror or error})") from error
    return None


def _check_acquired_files(manifest: Path, landed: Mapping[str, SceneFile]) -> None:
    """Every file an acquisition manifest lists is among the scene's files with the sha256 and size it records:
    a band file replaced after it was acquired must not be catalogued as that acquisition."""
    try:
        text = manifest.read_text(encoding="utf-8", errors="replace")
        listed = acquired_manifest_files(text, ACQUIRED_MANIFEST_NAME)
    except OSError as error:
        raise RasterReadError(manifest.name, f"file cannot be read ({error.strerror or error})") from error
    except ManifestError as error:
        raise RasterReadError(ACQUIRED_MANIFEST_NAME, str(error)) from error
    entries = json.loads(text)["files"]
    for role, name in listed.items():
        found = landed.get(name)
        if found is None:
            raise RasterReadError(
                name, f"{ACQUIRED_MANIFEST_NAME} lists it as {role!r} but it is not a file of the scene"
            )
        expected_sha256, expected_size = entries[role].get("sha256"), entries[role].get("size")
        if expected_sha256 is not None and str(expected_sha256).lower() != found.sha256:
            raise RasterReadError(
                name,
                f"sha256 {found.sha256} differs from {expected_sha256} recorded in {ACQUIRED_MANIFEST_NAME}: the "
                "file changed after it was acquired; acquire the item again",
            )
        if expected_size is not None and expected_size != found.size_bytes:
            raise RasterReadError(
                name, f"size {found.size_bytes} bytes differs from {expected_size} recorded in {ACQUIRED_MANIFEST_NAME}"
            )


def read_scene_metadata(
    scene_id: str, collection: str, files: Mapping[str, Path], mtl: MtlGroup | None = None
) -> SceneMetadata:
    """Read a scene's files (name -> local path) into SceneMetadata.

    ``files`` holds every original file of the scene (GeoTIFFs and, for Landsat, the MTL; for an acquired
    scene, its ``scene.json`` manifest); all are hashed, and files a manifest lists must match its sha256 and
    size. ``mtl`` is the parsed MTL (``parse_mtl``); when None and an ``*_MTL.txt`` is among the files it is
    parsed here. MTL values win over GeoTIFF tags (ACQUISITION_TIME, TIFFTAG_DATETIME, PLATFORM, CLOUD_COVER).
    Raises RasterReadError naming the first file that is not a usable georeferenced raster.
    """
    scene_files = []
    for name in sorted(files):
        sha256, size = file_sha256(files[name])
        scene_files.append(SceneFile(name=name, size_bytes=size, sha256=sha256))
    if ACQUIRED_MANIFEST_NAME in files:
        _check_acquired_files(files[ACQUIRED_MANIFEST_NAME], {f.name: f for f in scene_files})
    raster_names = _raster_names_in_order(files)
    if not raster_names:
        raise RasterReadError(scene_id, f"no .tif/.tiff file among {sorted(files)}")
    if mtl is None:
        mtl = _mtl_from_files(files)
    mtl_fields = None
    if mtl is not None:
        try:
            mtl_fields = landsat_metadata_from_mtl(mtl)
        except MtlParseError as error:
            raise RasterReadError(f"{scene_id}_MTL.txt", str(error)) from error
    rasters = [_open_raster(name, files[name]) for name in raster_names]
    reference = _reference_raster(rasters)
    for raster in rasters:
        if not raster.crs.equals(reference.crs):
            raise RasterReadError(
                raster.name, f"CRS {raster.crs.name!r} differs from {reference.name}'s {reference.crs.name!r}"
            )
    tags = reference.tags
    platform = (mtl_fields or {}).get("platform") or tags.get("PLATFORM")
    acquired_at = (mtl_fields or {}).get("acquired_at")
    for tag in ("ACQUISITION_TIME", "TIFFTAG_DATETIME"):
        if acquired_at is None and tags.get(tag):
            acquired_at = _parse_time(tags[tag])
    cloud_cover = (mtl_fields or {}).get("cloud_cover")
    if cloud_cover is None:
        cloud_cover = _parse_cloud_cover(tags.get("CLOUD_COVER"))
    body = body_of_crs(reference.crs)
    corners = [reference.transform @ (c, r) for c in (0, reference.width) for r in (0, reference.height)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    bounds_native = (min(xs), min(ys), max(xs), max(ys))
    extra = _extra_fields(tags, mtl_fields)
    geographic = None
    if body != "unknown":
        try:
            geographic = geographic_footprint(reference.crs, reference.transform, reference.width, reference.height)
        except (GEOSException, ValueError) as error:
            # A footprint that cannot be built leaves the scene in its native CRS only, never a failed scene.
            extra["footprint_error"] = str(error)[:256]
    return SceneMetadata(
        scene_id=scene_id,
        collection=collection,
        body=body,
        crs_wkt=reference.crs.to_wkt(),
        crs_epsg=reference.crs.to_epsg(),
        width=reference.width,
        height=reference.height,
        transform=tuple(reference.transform)[:6],  # type: ignore[arg-type]
        bounds_native=bounds_native,
        bounds_geographic=geographic[0] if geographic else None,
        footprint_geographic_wkt=(
            geographic[1].simplify(FOOTPRINT_SIMPLIFY_DEGREES, preserve_topology=True).wkt if geographic else None
        ),
        bands=_bands_for(rasters, scene_id, mtl_fields, platform),
        files=tuple(scene_files),
        acquired_at=acquired_at,
        platform=platform,
        instrument=(mtl_fields or {}).get("instrument") or tags.get("INSTRUMENT"),
        cloud_cover=cloud_cover,
        sun_azimuth=(mtl_fields or {}).get("sun_azimuth"),
        sun_elevation=(mtl_fields or {}).get("sun_elevation"),
        extra=extra,
    )


_EXTRA_MTL_FIELDS = (
    "product_id",
    "landsat_scene_id",
    "processing_level",
    "collection_number",
    "collection_category",
    "wrs_path",
    "wrs_row",
    "cloud_cover_land",
)
_TAGS_IN_FIELDS = {"ACQUISITION_TIME", "PLATFORM", "CLOUD_COVER", "INSTRUMENT", "AREA_OR_POINT"}
# Tags the acquisition downloader writes (SATLAKE_COLLECTION, SATLAKE_DERIVED_FROM, SATLAKE_SOURCE): the
# collection and catalog links are built from them, so they are kept first and a long source href still fits.
_SATLAKE_TAG_PREFIX = "SATLAKE_"
_SATLAKE_TAG_MAX_CHARS = 2048


def _extra_fields(tags: dict[str, str], mtl_fields: dict[str, Any] | None) -> dict[str, str]:
    extra: dict[str, str] = {}
    for key in _EXTRA_MTL_FIELDS:
        value = (mtl_fields or {}).get(key)
        if value is not None:
            extra[f"landsat:{key}"] = str(value)
    for key, value in sorted(tags.items()):
        if key.startswith(_SATLAKE_TAG_PREFIX) and len(value) <= _SATLAKE_TAG_MAX_CHARS:
            extra[f"tag:{key}"] = value
    for key, value in sorted(tags.items()):
        # Short custom tags are kept (simulation truth, processing notes); long blobs (XML) are not.
        if key not in _TAGS_IN_FIELDS and len(value) <= 256 and len(extra) < 64:
            extra.setdefault(f"tag:{key}", value)
    return extra
