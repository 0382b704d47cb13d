"""Pure helpers behind the scene assets and their checks: outcomes of COG, NDVI, item and raw-zone checks,
immutable keeping of originals, quarantine rows, and which acquisitions share a tile."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import rasterio
from rasterio.warp import transform_bounds

from satlake.catalog.checks import bbox_mismatches, item_assets_exist
from satlake.catalog.items import EARTH, item_body, parse_item_datetime, projection_code
from satlake.resources.object_store import ObjectStore
from satlake.scenes.metadata import BandInfo, SceneMetadata
from satlake.scenes.tables import SCENE_REJECTS_SCHEMA

# Landsat Level-1 fills the area outside the scene with 0 without declaring it as nodata.
LANDSAT_FILL_VALUE = 0.0


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def outcome_from_problems(problems: list[str], ok: str) -> CheckOutcome:
    if not problems:
        return CheckOutcome(True, ok)
    shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
    return CheckOutcome(False, shown, {"problems": problems[:50]})


def files_digest(files: Mapping[str, Path]) -> str:
    """One sha256 over the names and bytes of a set of files (names sorted)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8", "surrogatepass") + b"\0")
        with files[name].open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def reject_row(
    scene_id: str,
    keys: list[str],
    reason: str,
    stage: str,
    kept_at: str | None,
    event_time: datetime | None,
) -> pa.Table:
    row = {
        "scene_id": scene_id,
        "object_keys": [str(k) for k in keys],
        "reason": reason,
        "stage": stage,
        "kept_at": kept_at,
        "event_time": event_time,
        "rejected_at": datetime.now(UTC),
    }
    return pa.Table.from_pylist([row], schema=SCENE_REJECTS_SCHEMA)


def keep_originals(
    store: ObjectStore, prefix: str, files: Mapping[str, Path], sha256_by_name: Mapping[str, str]
) -> list[str]:
    """Copy each file to ``prefix/<name>`` unless an identical copy is there; never replace a different one.

    Returns the conflicts (an existing object with other bytes), in which case nothing is written.
    """
    conflicts = []
    missing = []
    for name in sorted(files):
        key = f"{prefix}/{name}"
        if not store.exists(key):
            missing.append(name)
        elif store.sha256(key) != sha256_by_name[name]:
            conflicts.append(f"{store.uri(key)} already holds different bytes than the new {name}")
    if conflicts:
        return conflicts
    for name in missing:
        store.put_file(files[name], f"{prefix}/{name}")
    return []


def check_hashes(stored: Mapping[str, str], expected: Mapping[str, str]) -> CheckOutcome:
    problems = [f"{name}: stored sha256 {stored.get(name)} != {digest}" for name, digest in sorted(expected.items())
                if stored.get(name) != digest]  # fmt: skip
    return outcome_from_problems(problems, f"{len(expected)} originals kept byte for byte")


def band_files(meta: SceneMetadata) -> list[str]:
    return sorted({band.file for band in meta.bands})


def band_by_common_name(meta: SceneMetadata, common_name: str) -> BandInfo | None:
    return next((band for band in meta.bands if band.common_name == common_name), None)


def source_nodata(meta: SceneMetadata, band: BandInfo | None = None) -> float | None:
    """The fill value to treat as nodata: the band's declared nodata, else Landsat's undeclared 0."""
    chosen = band or meta.bands[0]
    if chosen.nodata is not None:
        return chosen.nodata
    return LANDSAT_FILL_VALUE if meta.collection.startswith("landsat") else None


def check_ndvi_range(path: Path) -> CheckOutcome:
    """Every finite NDVI value of the raster lies in [-1, 1] (read block by block)."""
    low, high, valid = math.inf, -math.inf, 0
    with rasterio.open(path) as src:
        for _, window in src.block_windows(1):
            values = src.read(1, window=window)
            finite = values[np.isfinite(values)]
            if finite.size:
                valid += int(finite.size)
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if valid == 0:
        return CheckOutcome(True, "no valid NDVI pixels (all nodata)", {"valid_pixels": 0})
    passed = low >= -1.0 and high <= 1.0
    return CheckOutcome(passed, f"NDVI spans [{low:.3f}, {high:.3f}] over {valid} pixels",
                        {"min": low, "max": high, "valid_pixels": valid})  # fmt: skip


def check_hrefs(item: Mapping[str, Any], store: ObjectStore) -> CheckOutcome:
    missing = item_assets_exist(item, store.exists_uri)
    return outcome_from_problems([f"missing {href}" for href in missing], f"{len(item['assets'])} asset files exist")


def check_item_bbox(item: Mapping[str, Any], cog: Path, tolerance_degrees: float) -> CheckOutcome:
    """Earth items: lon/lat bbox vs. the COG bounds reprojected to WGS 84; other bodies: proj:bbox vs. the
    native bounds (within half a pixel)."""
    with rasterio.open(cog) as src:
        native = tuple(src.bounds)
        pixel = abs(src.transform.a)
        if item_body(item) == EARTH:
            lonlat = transform_bounds(src.crs, "EPSG:4326", *native, densify_pts=64)
            problems = bbox_mismatches(item, lonlat, tolerance_degrees)
        else:
            problems = bbox_mismatches(item, native, pixel / 2, field="proj:bbox")
            if item.get("bbox") or item.get("geometry"):
                problems.append(f"item of body {item_body(item)} has an Earth bbox or geometry")
    return outcome_from_problems(problems, "bbox matches the raster's bounds")


# --- tiles and acquisitions ---------------------------------------------------------------------------------


def _tile(code: str | None, bbox: list[float] | tuple[float, ...]) -> str:
    return f"{code or 'nocode'}|" + ",".join(f"{round(v):d}" for v in bbox)


def tile_key(meta: SceneMetadata) -> str:
    """Scenes are the same tile when they share the CRS and the native bounds (to the metre / unit)."""
    return _tile(projection_code(meta), meta.bounds_native)


def tile_acquisitions(catalog: pa.Table | None, tile: str) -> list[tuple[datetime, float | None, str]]:
    """(datetime, cloud cover, item id) of every catalogued item of ``tile``."""
    if catalog is None:
        return []
    found = []
    for text in catalog.column("item_json").to_pylist():
        item = json.loads(text)
        properties = item["properties"]
        if _tile(properties.get("proj:code"), properties.get("proj:bbox", [])) == tile:
            found.append(
                (parse_item_datetime(properties["datetime"]), properties.get("eo:cloud_cover"), str(item["id"]))
            )
    return sorted(found)
