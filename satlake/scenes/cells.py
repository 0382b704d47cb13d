"""Target bodies and coarse spatial cells: which world a CRS describes, geohashes, a scene's cell key.

Earth scenes get an Earth geohash; scenes of any other body get a body-prefixed cell (``mars-<hash>``) so they
can never match an Earth query.
"""

from __future__ import annotations

import math
import re

from pyproj import CRS

_GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"

# Body names as they appear in IAU / planetary CRS, datum and ellipsoid names.
_BODY_WORDS = {
    "mercury": "mercury",
    "venus": "venus",
    "moon": "moon",
    "lunar": "moon",
    "mars": "mars",
    "phobos": "phobos",
    "deimos": "deimos",
    "ceres": "ceres",
    "vesta": "vesta",
    "io": "io",
    "europa": "europa",
    "ganymede": "ganymede",
    "callisto": "callisto",
    "titan": "titan",
    "enceladus": "enceladus",
    "pluto": "pluto",
    "charon": "charon",
}
# Semi-major axes (metres) for CRS whose names say nothing, e.g. a bare "+proj=eqc +a=3396190".
_BODY_RADII = (
    ("earth", 6_350_000.0, 6_400_000.0),
    ("mars", 3_376_000.0, 3_400_000.0),
    ("moon", 1_737_000.0, 1_738_200.0),
    ("mercury", 2_439_000.0, 2_441_000.0),
    ("venus", 6_051_000.0, 6_052_500.0),
)


def geohash_encode(lat: float, lon: float, precision: int = 5) -> str:
    """Standard base-32 geohash of a WGS84 point; longitudes outside [-180, 180) are wrapped."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"cannot geohash a non-finite point (lat={lat}, lon={lon})")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} is outside [-90, 90]")
    if precision < 1:
        raise ValueError(f"geohash precision must be at least 1, got {precision}")
    lon = ((lon + 180.0) % 360.0) - 180.0
    lat_range, lon_range = [-90.0, 90.0], [-180.0, 180.0]
    chars: list[str] = []
    bits, bit_count, even = 0, 0, True
    while len(chars) < precision:
        interval, value = (lon_range, lon) if even else (lat_range, lat)
        middle = (interval[0] + interval[1]) / 2
        bits <<= 1
        if value >= middle:
            bits |= 1
            interval[0] = middle
        else:
            interval[1] = middle
        even = not even
        bit_count += 1
        if bit_count == 5:
            chars.append(_GEOHASH_ALPHABET[bits])
            bits, bit_count = 0, 0
    return "".join(chars)


def body_of_crs(crs: CRS) -> str:
    """The target body of a CRS ("earth", "mars", "moon", ...) from its datum, ellipsoid and radius.

    Returns "unknown" for engineering CRS without an ellipsoid and for radii that match no known body.
    """
    names = [crs.name or ""]
    if crs.datum is not None:
        names.append(crs.datum.name or "")
    if crs.ellipsoid is not None:
        names.append(crs.ellipsoid.name or "")
    words = set(re.findall(r"[a-z]+", " ".join(names).lower()))
    for word, body in _BODY_WORDS.items():
        if word in words:
            return body
    if crs.ellipsoid is None:
        return "unknown"
    radius = crs.ellipsoid.semi_major_metre
    for body, low, high in _BODY_RADII:
        if low <= radius <= high:
            return body
    return "unknown"


def bounds_center(bounds: tuple[float, float, float, float]) -> tuple[float, float]:
    """(lon, lat) centre of west/south/east/north bounds, also when west > east (antimeridian crossing)."""
    west, south, east, north = bounds
    if west > east:
        east += 360.0
    lon = ((west + east) / 2 + 180.0) % 360.0 - 180.0
    return lon, (south + north) / 2


def scene_cell_key(body: str, bounds_geographic: tuple[float, float, float, float] | None, precision: int = 5) -> str:
    """Coarse cell of a scene for layout and file skipping: an Earth geohash, or ``<body>-<hash>`` elsewhere.

    The hash of another body is computed on that body's own longitude/latitude and prefixed with the body
    name, so it is never an Earth geohash. Without geographic bounds the cell is ``<body>-nogeo``.
    """
    if bounds_geographic is None:
        return f"{body}-nogeo"
    lon, lat = bounds_center(bounds_geographic)
    cell = geohash_encode(lat, lon, precision)
    return cell if body == "earth" else f"{body}-{cell}"
