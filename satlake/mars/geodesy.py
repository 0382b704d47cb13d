"""Distances on Mars: the IAU 2015 planetocentric CRS of Mars and geodesics on its ellipsoid.

Rover traverses are published as planetocentric longitude (east) and latitude in degrees. Measuring them with an
Earth ellipsoid (WGS84, pyproj's default) would be silently wrong by a factor of ~1.9, and the Mars sphere
(IAU_2015:49900) differs from the ellipsoid by up to a few tenths of a percent on north-south lines, so every
distance the Mars source computes (``segment_m`` of bronze.mars_waypoints, the "Earth-range" check of the
waypoint parser) goes through this module: one CRS code, one ellipsoid, pyproj's Karney geodesics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from pyproj import CRS, Geod

MARS_CRS_CODE = "IAU_2015:49902"  # "Mars (2015) / Ocentric": ellipsoid a=3396190 m, b=3376200 m
MARS_SPHERE_CRS_CODE = "IAU_2015:49900"  # "Mars (2015) - Sphere": r=3396190 m, for comparison only


class GeodesyError(ValueError):
    """A coordinate that no distance can be computed for (non-finite, or out of range)."""


@lru_cache(maxsize=8)
def mars_crs(code: str = MARS_CRS_CODE) -> CRS:
    """The Mars CRS (by default the planetocentric ellipsoid one every Mars row is stored in)."""
    crs = CRS(code)
    if crs.ellipsoid is None:
        raise GeodesyError(f"CRS {code} has no ellipsoid; pass an IAU_2015 Mars geographic CRS such as {MARS_CRS_CODE}")
    return crs


@lru_cache(maxsize=8)
def mars_geod(code: str = MARS_CRS_CODE) -> Geod:
    """pyproj Geod on the ellipsoid of the Mars CRS ``code`` (never pyproj's WGS84 default)."""
    return mars_crs(code).get_geod()


def normalise_lon(lon: float) -> float:
    """Longitude east in -180..180: 0..360 east-positive longitudes (180 < lon <= 360) are shifted by -360."""
    if not math.isfinite(lon) or lon < -180.0 or lon > 360.0:
        raise GeodesyError(f"longitude {lon!r} is outside -180..360 degrees east")
    return lon - 360.0 if lon > 180.0 else lon


def _check(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeodesyError(f"coordinate ({lon!r}, {lat!r}) is not finite")
    if abs(lat) > 90.0:
        raise GeodesyError(f"latitude {lat!r} is outside -90..90 degrees")
    if lon < -180.0 or lon > 360.0:
        raise GeodesyError(f"longitude {lon!r} is outside -180..360 degrees east")


def geodesic_m(lon1: float, lat1: float, lon2: float, lat2: float, *, crs_code: str = MARS_CRS_CODE) -> float:
    """Geodesic distance in metres between two planetocentric points (degrees) on the ellipsoid of ``crs_code``."""
    _check(lon1, lat1)
    _check(lon2, lat2)
    _az12, _az21, distance = mars_geod(crs_code).inv(lon1, lat1, lon2, lat2)
    return float(distance)


def segment_lengths_m(
    lons: Sequence[float], lats: Sequence[float], *, crs_code: str = MARS_CRS_CODE
) -> list[float | None]:
    """Length of each step of a path: element i is the geodesic from point i-1 to point i; None for the first."""
    if len(lons) != len(lats):
        raise GeodesyError(f"{len(lons)} longitudes but {len(lats)} latitudes; pass one of each per point")
    for lon, lat in zip(lons, lats, strict=True):
        _check(lon, lat)
    if len(lons) == 0:
        return []
    if len(lons) == 1:
        return [None]
    _az12, _az21, distances = mars_geod(crs_code).inv(list(lons[:-1]), list(lats[:-1]), list(lons[1:]), list(lats[1:]))
    return [None, *(float(distance) for distance in distances)]


def distance_from_km(
    origin_lon: float, origin_lat: float, lon: float, lat: float, *, crs_code: str = MARS_CRS_CODE
) -> float:
    """Geodesic distance in kilometres from an origin (e.g. a rover's landing site) to a point."""
    return geodesic_m(origin_lon, origin_lat, lon, lat, crs_code=crs_code) / 1000.0
