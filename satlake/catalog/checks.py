"""Pure checks on catalog items, used by the catalog asset checks: do asset files exist, does the bbox fit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

BboxField = Literal["bbox", "proj:bbox"]


def item_assets_exist(item: Mapping[str, Any], resolve: Callable[[str], bool]) -> list[str]:
    """Hrefs of the item's assets that ``resolve`` says do not exist, in asset-key order (empty = all exist).

    ``resolve`` answers for one href (a local path, file:// or s3:// URI), e.g. a storage resource's exists().
    """
    missing = []
    for key in sorted(item.get("assets", {})):
        href = item["assets"][key].get("href")
        if not href or not resolve(href):
            missing.append(href or f"<asset {key!r} has no href>")
    return missing


def _longitude_difference(a: float, b: float) -> float:
    # Compare on the circle so 179.9999 and -180.0 count as neighbours, not 360 degrees apart.
    return abs((a - b + 180.0) % 360.0 - 180.0)


def bbox_mismatches(
    item: Mapping[str, Any],
    bounds: Sequence[float],
    tolerance: float,
    *,
    field: BboxField = "bbox",
) -> list[str]:
    """How the item's bbox differs from ``bounds`` (W, S, E, N) by more than ``tolerance``; empty = match.

    ``field="bbox"`` compares the lon/lat bbox (degrees, antimeridian-aware); ``field="proj:bbox"``
    compares the bbox in the native CRS (its units), which is what to use for scenes of other bodies.
    """
    bbox = item.get("bbox") if field == "bbox" else item.get("properties", {}).get("proj:bbox")
    if not bbox:
        return [f"item {item.get('id')!r} has no {field}"]
    if len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    if len(bounds) != 4:
        raise ValueError(f"bounds {list(bounds)!r} must be four numbers W, S, E, N")
    problems = []
    for name, expected, actual in zip(("west", "south", "east", "north"), bounds, bbox, strict=True):
        is_longitude = field == "bbox" and name in ("west", "east")
        difference = _longitude_difference(actual, expected) if is_longitude else abs(actual - expected)
        if not math.isfinite(difference) or difference > tolerance:
            problems.append(f"{field} {name} is {actual}, raster bounds say {expected} (tolerance {tolerance})")
    return problems


def bbox_matches(
    item: Mapping[str, Any], bounds: Sequence[float], tolerance: float, *, field: BboxField = "bbox"
) -> bool:
    """True when every edge of the item's bbox is within ``tolerance`` of ``bounds``."""
    return not bbox_mismatches(item, bounds, tolerance, field=field)
