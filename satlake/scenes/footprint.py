"""Geographic footprints of rasters: the densified outline projected to its body's lon/lat, split at the
antimeridian and closed over an enclosed pole.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import make_valid

__all__ = ["EDGE_DENSIFY_POINTS", "FOOTPRINT_SIMPLIFY_DEGREES", "geographic_footprint"]

EDGE_DENSIFY_POINTS = 64  # points per raster edge when projecting the outline to lon/lat
# Densified outlines are simplified back to what changes the shape by more than ~1 m on Earth.
FOOTPRINT_SIMPLIFY_DEGREES = 1e-5


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
