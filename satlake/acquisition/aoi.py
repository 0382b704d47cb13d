"""Areas of interest: the ``AreaOfInterest`` model and the checks a new one passes (its name, its GeoJSON or
bbox geometry, its source and collections, its limits). Pure: no storage, no network."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from satlake.acquisition.sources import SourceError, StacSource, check_collections, resolve_source
from satlake.settings import Settings

DEFAULT_COLLECTIONS = ("sentinel-2-l2a",)
DEFAULT_CLOUD_COVER_MAX = 30.0
DEFAULT_ALERT_MIN_HA = 1.0
DEFAULT_SOURCE = "earth-search"

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_GEOD = Geod(ellps="WGS84")
_ACCEPTED_TYPES = "a Polygon, a MultiPolygon, a Feature of one, or a FeatureCollection of one such Feature"


class AoiError(ValueError):
    """An area of interest that cannot be used; the message names it, what is wrong and what to do."""


@dataclass(frozen=True)
class AreaOfInterest:
    """A named region searched for new scenes, with the search's defaults."""

    name: str
    geometry: BaseGeometry  # shapely Polygon or MultiPolygon, lon/lat (EPSG:4326)
    collections: tuple[str, ...]
    cloud_cover_max: float | None  # percent, 0..100; None: any cover
    since: date | None  # scenes acquired before this day are never searched for
    source: str  # a source name or an http(s) URL, as given
    alert_min_ha: float  # loss polygons smaller than this raise no alert
    created_by: str
    created_at: datetime  # UTC
    area_km2: float  # geodesic, on the WGS84 ellipsoid
    removed_at: datetime | None = None  # UTC; None while the AOI is active

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        west, south, east, north = self.geometry.bounds
        return west, south, east, north

    @property
    def active(self) -> bool:
        return self.removed_at is None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise AoiError(
            f"AOI name {name!r} is not allowed: use 1 to 63 lower-case letters, digits, '-' or '_', starting with "
            "a letter or digit (e.g. black-forest-2024)"
        )
    return name


def parse_geojson(text: str, origin: str = "GeoJSON") -> BaseGeometry:
    """The Polygon or MultiPolygon of a GeoJSON document; ``origin`` (e.g. the file name) starts each message."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise AoiError(
            f"{origin}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): give a GeoJSON "
            f"file holding {_ACCEPTED_TYPES}"
        ) from None
    return geometry_from_geojson(document, origin)


def geometry_from_geojson(document: Any, origin: str = "GeoJSON") -> BaseGeometry:
    """The Polygon or MultiPolygon of a parsed GeoJSON object (see ``parse_geojson``)."""
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list) or not features:
            raise AoiError(f"{origin}: the FeatureCollection has no features, so the AOI would be empty")
        if len(features) > 1:
            raise AoiError(
                f"{origin}: the FeatureCollection has {len(features)} features; an AOI is one (Multi)Polygon: merge "
                "them into one MultiPolygon, or add each as its own AOI"
            )
        return geometry_from_geojson(features[0], f"{origin} (its feature)")
    if kind == "Feature":
        geometry = document.get("geometry")
        if geometry is None:
            raise AoiError(f"{origin}: the Feature has no geometry (null), so the AOI would be empty")
        return geometry_from_geojson(geometry, f"{origin} (its geometry)")
    if kind not in ("Polygon", "MultiPolygon"):
        found = f"type {kind!r}" if isinstance(kind, str) else "no GeoJSON 'type'"
        raise AoiError(f"{origin}: {found}, but an AOI is {_ACCEPTED_TYPES}")
    try:
        geometry = shape(document)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, shapely.errors.GEOSException) as error:
        raise AoiError(
            f"{origin}: the {kind}'s coordinates are malformed ({error}): write rings of [lon, lat] positions, "
            "each closed (first position repeated last) with at least 4 positions"
        ) from None
    # Heights mean nothing to a search footprint; dropping them keeps the stored WKB two-dimensional.
    return shapely.force_2d(geometry)


def parse_bbox(text: str) -> Polygon:
    """``"W,S,E,N"`` in degrees as a Polygon (no box across the antimeridian: W < E)."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError(f"{len(parts)} value(s)")
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise AoiError(
            f"bbox {text!r}: expected four numbers W,S,E,N in degrees, e.g. --bbox=7.9,47.9,8.3,48.2 (write "
            "--bbox=W,S,E,N when W is negative)"
        ) from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise AoiError(f"bbox {text!r}: every value must be a finite number of degrees")
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise AoiError(f"bbox {text!r}: outside lon/lat: longitudes must lie in [-180, 180] and latitudes in [-90, 90]")
    if west >= east:
        raise AoiError(
            f"bbox {text!r}: west ({west:g}) must be less than east ({east:g}); a box across the antimeridian "
            "is two AOIs, one each side of 180°"
        )
    if south >= north:
        raise AoiError(f"bbox {text!r}: south ({south:g}) must be less than north ({north:g})")
    return box(west, south, east, north)


def geodesic_area_km2(geometry: BaseGeometry) -> float:
    """The area of a lon/lat (Multi)Polygon on the WGS84 ellipsoid in km², holes excluded."""
    polygons = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
    total = 0.0
    for polygon in polygons:
        # Ring orientation decides the sign pyproj returns: take magnitudes, then subtract the holes.
        total += abs(_GEOD.geometry_area_perimeter(Polygon(polygon.exterior))[0])
        total -= sum(abs(_GEOD.geometry_area_perimeter(Polygon(hole))[0]) for hole in polygon.interiors)
    return total / 1e6


def validate_geometry(geometry: BaseGeometry, name: str, max_area_km2: float) -> float:
    """The geodesic area (km²) of a usable AOI geometry, else ``AoiError`` saying what is wrong."""
    label = f"AOI {name!r}"
    if not isinstance(geometry, Polygon | MultiPolygon):
        raise AoiError(f"{label}: a {geometry.geom_type} is not an area: give {_ACCEPTED_TYPES}")
    if geometry.is_empty:
        raise AoiError(f"{label}: the geometry is empty: give a polygon with at least three distinct corners")
    coordinates = shapely.get_coordinates(geometry)
    if not all(math.isfinite(v) for v in coordinates.flat):
        raise AoiError(f"{label}: the geometry has coordinates that are not finite numbers")
    west, south, east, north = geometry.bounds
    if west < -180 or east > 180:
        raise AoiError(
            f"{label}: longitudes {west:g}..{east:g} leave [-180, 180], so the AOI crosses the antimeridian: add one "
            "AOI each side of 180° instead"
        )
    if east - west > 180:
        raise AoiError(
            f"{label}: its longitudes span {east - west:g}° (more than 180°), so it crosses the antimeridian (or "
            "circles the globe): add one AOI each side of 180° instead"
        )
    if south < -90 or north > 90:
        raise AoiError(f"{label}: latitudes {south:g}..{north:g} leave [-90, 90]: coordinates are [lon, lat]")
    if not geometry.is_valid:
        raise AoiError(
            f"{label}: the geometry is not valid ({explain_validity(geometry)}): fix the rings so they do not cross "
            "themselves or each other (e.g. a bow-tie is two polygons)"
        )
    area = geodesic_area_km2(geometry)
    if area <= 0:
        raise AoiError(f"{label}: the geometry encloses no area: give a polygon with at least three distinct corners")
    if area > max_area_km2:
        raise AoiError(
            f"{label} covers {area:,.0f} km², more than the {max_area_km2:,.0f} km² limit "
            "(SATLAKE_AOI_MAX_AREA_KM2): split it into smaller AOIs, or raise the limit"
        )
    return area


def parse_collections(text: str) -> tuple[str, ...]:
    """A comma-separated list of collection ids, each once, in the given order."""
    return unique(part.strip() for part in text.split(",") if part.strip())


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def check_cloud_cover(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0 <= value <= 100:  # written so that NaN fails too
        raise AoiError(f"cloud cover limit {value:g} is not a percentage: give a number from 0 to 100")
    return float(value)


def check_alert_min_ha(value: float) -> float:
    if not 0 <= value < math.inf:
        raise AoiError(f"alert minimum {value:g} ha is not an area: give a number of hectares, 0 or more")
    return float(value)


def new_aoi(
    settings: Settings,
    name: str,
    geometry: BaseGeometry,
    *,
    created_by: str,
    collections: Iterable[str] = DEFAULT_COLLECTIONS,
    cloud_cover_max: float | None = DEFAULT_CLOUD_COVER_MAX,
    since: date | None = None,
    source: str = DEFAULT_SOURCE,
    alert_min_ha: float = DEFAULT_ALERT_MIN_HA,
    created_at: datetime | None = None,
) -> tuple[AreaOfInterest, StacSource]:
    """A checked new AOI and the source it resolves to; ``AoiError`` for anything a search could not use."""
    check_name(name)
    try:
        resolved = resolve_source(settings, source)
        checked = check_collections(resolved, unique(collections))
    except SourceError as error:
        raise AoiError(f"AOI {name!r}: {error}") from None
    area = validate_geometry(geometry, name, settings.aoi_max_area_km2)
    aoi = AreaOfInterest(
        name=name,
        geometry=geometry,
        collections=checked,
        cloud_cover_max=check_cloud_cover(cloud_cover_max),
        since=since,
        source=source.strip(),
        alert_min_ha=check_alert_min_ha(alert_min_ha),
        created_by=created_by,
        created_at=(created_at or datetime.now(UTC)).astimezone(UTC),
        area_km2=area,
    )
    return aoi, resolved
