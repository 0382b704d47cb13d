"""Bronze rows of MMGIS traverse waypoints, in Mars coordinates (see ``parse`` for the rules every parser keeps:
never raise on what the remote side sent, reject a bad record alone with a readable reason)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import Point

from satlake.mars.geodesy import MARS_CRS_CODE, distance_from_km, geodesic_m
from satlake.mars.parse import INT32_MAX, ParseResult, as_float, as_int, as_rover, json_type, load_document
from satlake.mars.rovers import Rover

MAX_KM_FROM_LANDING = 200.0  # farther than any rover has driven (Opportunity: ~45 km); beyond it the CRS is wrong


def parse_waypoints(
    body: bytes | str, rover: Rover | str, mission: str, response_id: str, fetched_at: datetime
) -> ParseResult:
    """bronze.mars_waypoints rows, one per Point feature of an MMGIS waypoints FeatureCollection, in file order.

    ``segment_m`` is the geodesic (Mars ellipsoid) from the previous kept waypoint; a waypoint whose sol goes
    back in time is kept, with a warning.
    """
    rover = as_rover(rover)
    result = ParseResult()
    features = load_document(body, "waypoints FeatureCollection", "features", list, result)
    if features is None:
        return result
    previous: dict[str, Any] | None = None
    for index, feature in enumerate(features):
        waypoint, reason = _waypoint(feature, rover)
        if waypoint is None:
            result.reject(feature, f"{mission} waypoint {index}: {reason}")
            continue
        segment_m = None
        if previous is not None:
            segment_m = geodesic_m(previous["lon"], previous["lat"], waypoint["lon"], waypoint["lat"])
            if waypoint["sol"] < previous["sol"]:
                result.warnings.append(
                    f"{mission} waypoint {index} (site {waypoint['site']} drive {waypoint['drive']}) has sol "
                    f"{waypoint['sol']}, before the previous waypoint's sol {previous['sol']}: "
                    "the traverse is not in sol order"
                )
        row = {
            "rover_name": rover.name,
            "mission": mission,
            **waypoint,
            "segment_m": segment_m,
            "crs": MARS_CRS_CODE,
            "geometry_wkb": shapely.to_wkb(Point(waypoint["lon"], waypoint["lat"])),
            "response_id": response_id,
            "fetched_at": fetched_at,
        }
        result.rows.append(row)
        previous = row
    return result


def _waypoint(feature: Any, rover: Rover) -> tuple[dict[str, Any] | None, str]:
    """The published columns of one waypoint feature (sol .. dist_total_m), or None and why it is rejected."""
    if not isinstance(feature, Mapping):
        return None, f"a feature is a JSON {json_type(feature)}, not an object"
    geometry = feature.get("geometry")
    kind = geometry.get("type") if isinstance(geometry, Mapping) else None
    if kind != "Point":
        return None, f"the geometry is {kind or 'missing'}, not a Point"
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        return None, f"Point coordinates {coordinates!r} are not [lon, lat, ...]"
    lon, lat = coordinates[0], coordinates[1]
    if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in (lon, lat)):
        return None, f"coordinates ({lon!r}, {lat!r}) are not numbers"
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None, f"coordinates ({lon!r}, {lat!r}) are not finite"
    if abs(lat) > 90:
        return None, f"latitude {lat} is outside -90..90"
    if not -180 <= lon <= 360:
        return None, f"longitude {lon} is outside -180..360"
    lon = float(lon) - 360.0 if lon > 180 else float(lon)
    lat = float(lat)
    properties = feature.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    sol = as_int(properties.get("sol"))
    if sol is None or not 0 <= sol <= INT32_MAX:
        return None, f"waypoint has no sol (sol={properties.get('sol')!r})"
    site, drive = _site_drive(properties)
    if site is None or drive is None:
        return None, f"waypoint has no site/drive (site={properties.get('site')!r}, RMC={properties.get('RMC')!r})"
    km = distance_from_km(rover.landing_lon, rover.landing_lat, lon, lat)
    if km > MAX_KM_FROM_LANDING:
        return None, (
            f"waypoint at ({lon:.4f}, {lat:.4f}) is {km:.0f} km from {rover.display_name}'s landing site; "
            "coordinates of another body or CRS?"
        )
    return {
        "sol": sol,
        "site": site,
        "drive": drive,
        "lon": lon,
        "lat": lat,
        "elev_geoid_m": as_float(properties.get("elev_geoid")),
        "dist_m": as_float(properties.get("dist_m")),
        "dist_total_m": as_float(properties.get("dist_total_m")),
    }, ""


def _site_drive(properties: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Site and drive numbers, from their own properties or else from the RMC ("site_drive") label."""
    site, drive = as_int(properties.get("site")), as_int(properties.get("drive"))
    rmc = properties.get("RMC")
    if (site is None or drive is None) and isinstance(rmc, str) and rmc.count("_") == 1:
        left, right = rmc.split("_")
        if site is None and left.strip().isdigit():
            site = int(left)
        if drive is None and right.strip().isdigit():
            drive = int(right)
    ok = site is not None and drive is not None and 0 <= site <= INT32_MAX and 0 <= drive <= INT32_MAX
    return (site, drive) if ok else (None, None)
