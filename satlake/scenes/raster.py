"""Reading landed rasters into SceneMetadata: grid, CRS, target body, footprint on that body, bands, hashes.

Every failure of a file (not a TIFF, truncated, no CRS, absurd size, ...) is raised as RasterReadError naming
the file and the reason, so the caller can quarantine the scene without crashing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shapely.errors import GEOSException

from satlake.scenes.bands import SYNTHETIC_PLATFORM, bands_for, raster_names_in_order, reference_raster
from satlake.scenes.cells import body_of_crs, geohash_encode, scene_cell_key
from satlake.scenes.footprint import FOOTPRINT_SIMPLIFY_DEGREES, geographic_footprint
from satlake.scenes.geotiff import RasterReadError, open_raster
from satlake.scenes.grouping import ACQUIRED_MANIFEST_NAME
from satlake.scenes.integrity import check_acquired_files, file_sha256
from satlake.scenes.metadata import SceneFile, SceneMetadata
from satlake.scenes.mtl import MtlGroup, MtlParseError, landsat_metadata_from_mtl, parse_mtl
from satlake.scenes.sidecar import (
    ACQUIRED_AT_FROM_EXTRA,
    REPLACED_TIME_EXTRA,
    UNREADABLE_TIME_EXTRA,
    format_time,
    sidecar_time,
)

# The names callers import from here, some defined in the modules above.
__all__ = [
    "SYNTHETIC_PLATFORM",
    "RasterReadError",
    "file_sha256",
    "geographic_footprint",
    "geohash_encode",
    "read_scene_metadata",
    "scene_cell_key",
]

_MTL_NAME = re.compile(r"_MTL\.txt$", re.IGNORECASE)


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


def read_scene_metadata(
    scene_id: str, collection: str, files: Mapping[str, Path], mtl: MtlGroup | None = None
) -> SceneMetadata:
    """Read a scene's files (name -> local path) into SceneMetadata.

    ``files`` holds every original file of the scene (GeoTIFFs and, for Landsat, the MTL; for an acquired
    scene, its ``scene.json`` manifest); all are hashed, and files a manifest lists must match its sha256 and
    size. ``mtl`` is the parsed MTL (``parse_mtl``); when None and an ``*_MTL.txt`` is among the files it is
    parsed here. MTL values win over GeoTIFF tags (ACQUISITION_TIME, TIFFTAG_DATETIME, PLATFORM, CLOUD_COVER).
    A datetime sidecar among the files (``<raster>.datetime.json``, ``scenes.sidecar``) wins over both: it is
    the time a person supplied, and the value it replaces is kept in ``extra``. ``acquired_at`` is None when
    nothing gives a time (raw/scenes quarantines such a scene).
    Raises RasterReadError naming the first file that is not a usable georeferenced raster, and
    AcquisitionTimeError for a sidecar that holds no usable time.
    """
    scene_files = []
    for name in sorted(files):
        sha256, size = file_sha256(files[name])
        scene_files.append(SceneFile(name=name, size_bytes=size, sha256=sha256))
    if ACQUIRED_MANIFEST_NAME in files:
        check_acquired_files(files[ACQUIRED_MANIFEST_NAME], {f.name: f for f in scene_files})
    raster_names = raster_names_in_order(files)
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
    rasters = [open_raster(name, files[name]) for name in raster_names]
    reference = reference_raster(rasters)
    for raster in rasters:
        if not raster.crs.equals(reference.crs):
            raise RasterReadError(
                raster.name, f"CRS {raster.crs.name!r} differs from {reference.name}'s {reference.crs.name!r}"
            )
    tags = reference.tags
    platform = (mtl_fields or {}).get("platform") or tags.get("PLATFORM")
    acquired_at = (mtl_fields or {}).get("acquired_at")
    unreadable_tags = []
    for tag in ("ACQUISITION_TIME", "TIFFTAG_DATETIME"):
        if acquired_at is None and tags.get(tag):
            acquired_at = _parse_time(tags[tag])
            if acquired_at is None:
                unreadable_tags.append(f"{tag}={tags[tag]!r}"[:128])
    cloud_cover = (mtl_fields or {}).get("cloud_cover")
    if cloud_cover is None:
        cloud_cover = _parse_cloud_cover(tags.get("CLOUD_COVER"))
    body = body_of_crs(reference.crs)
    corners = [reference.transform @ (c, r) for c in (0, reference.width) for r in (0, reference.height)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    bounds_native = (min(xs), min(ys), max(xs), max(ys))
    extra = _extra_fields(tags, mtl_fields)
    if unreadable_tags:
        extra[UNREADABLE_TIME_EXTRA] = ", ".join(unreadable_tags)
    supplied = sidecar_time(files, raster_names)
    if supplied is not None:
        if acquired_at is not None and acquired_at != supplied[0]:
            extra[REPLACED_TIME_EXTRA] = format_time(acquired_at)
        acquired_at, extra[ACQUIRED_AT_FROM_EXTRA] = supplied
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
        bands=bands_for(rasters, scene_id, mtl_fields, platform),
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
