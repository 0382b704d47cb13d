"""The scene path's Delta tables: where they live, their schemas, SceneMetadata <-> row conversion, and the
one write they all use (replace exactly one scene's rows)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from satlake.catalog.table import CATALOG_ITEMS as CATALOG_ITEMS  # defined below the domains; re-exported
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.scenes.metadata import BandInfo, SceneFile, SceneMetadata

RAW_SCENES = TableRef("raw", "scenes")
SCENE_REJECTS = TableRef("raw", "scene_rejects")
SILVER_COGS = TableRef("silver", "cogs")
GOLD_NDVI = TableRef("gold", "ndvi")
GOLD_QUICKLOOKS = TableRef("gold", "quicklooks")
GOLD_FOREST_CHANGE = TableRef("gold", "forest_change")

COMMIT_RETRIES = 8
_SCENE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")

_TS = pa.timestamp("us", tz="UTC")
RAW_SCENES_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
        pa.field("body", pa.string(), nullable=False),
        pa.field("crs_epsg", pa.int32()),
        pa.field("crs_wkt", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("native_xmin", pa.float64()),
        pa.field("native_ymin", pa.float64()),
        pa.field("native_xmax", pa.float64()),
        pa.field("native_ymax", pa.float64()),
        pa.field("bbox_xmin", pa.float64(), metadata={"doc": "west on the body's lon/lat; null when unknown"}),
        pa.field("bbox_ymin", pa.float64()),
        pa.field("bbox_xmax", pa.float64()),
        pa.field("bbox_ymax", pa.float64()),
        pa.field("band_count", pa.int32(), nullable=False),
        pa.field("band_names", pa.list_(pa.string()), nullable=False),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("nodata", pa.float64()),
        pa.field("acquired_at", _TS),
        pa.field("platform", pa.string()),
        pa.field("instrument", pa.string()),
        pa.field("cloud_cover", pa.float64()),
        pa.field("sun_azimuth", pa.float64()),
        pa.field("sun_elevation", pa.float64()),
        pa.field("raw_prefix", pa.string(), nullable=False, metadata={"doc": "object-store folder of originals"}),
        pa.field("files_json", pa.string(), nullable=False, metadata={"doc": "[{name, size_bytes, sha256}]"}),
        pa.field("landing_keys", pa.list_(pa.string()), nullable=False),
        pa.field("metadata_json", pa.string(), nullable=False, metadata={"doc": "the whole SceneMetadata"}),
        pa.field("ingested_at", _TS, nullable=False),
    ]
)
SCENE_REJECTS_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("object_keys", pa.list_(pa.string()), nullable=False, metadata={"doc": "landing keys, as received"}),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False, metadata={"doc": "sensor (keys/grouping) or raw/scenes"}),
        pa.field("kept_at", pa.string(), metadata={"doc": "where the originals are kept"}),
        pa.field("event_time", _TS),
        pa.field("rejected_at", _TS, nullable=False),
    ]
)
SILVER_COGS_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("band", pa.string(), nullable=False, metadata={"doc": "asset key: eo common name or band name"}),
        pa.field("band_name", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("overviews", pa.list_(pa.int32()), nullable=False),
        pa.field("block_rows", pa.int32(), nullable=False),
        pa.field("block_cols", pa.int32(), nullable=False),
        pa.field("compression", pa.string(), nullable=False),
        pa.field("profile", pa.string(), nullable=False),
    ]
)
GOLD_NDVI_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("ndvi_min", pa.float64()),
        pa.field("ndvi_max", pa.float64()),
        pa.field("ndvi_mean", pa.float64()),
        pa.field("valid_fraction", pa.float64(), nullable=False),
    ]
)
GOLD_QUICKLOOKS_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False),
        pa.field("object_key", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False, metadata={"doc": "true_color, ndvi or grayscale"}),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
    ]
)
GOLD_FOREST_CHANGE_SCHEMA = pa.schema(
    [
        pa.field("scene_id", pa.string(), nullable=False, metadata={"doc": "the later (after) acquisition"}),
        pa.field("before_scene_id", pa.string(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
        pa.field("tile", pa.string(), nullable=False, metadata={"doc": "proj code and native bbox of the tile"}),
        pa.field("polygon_index", pa.int32(), nullable=False),
        pa.field("before_date", pa.date32()),
        pa.field("after_date", pa.date32()),
        pa.field("area_ha", pa.float64(), nullable=False),
        pa.field("mean_ndvi_drop", pa.float64()),
        pa.field("pixel_count", pa.int64(), nullable=False),
        pa.field("crs_epsg", pa.int32()),
        pa.field("geometry_wkb", pa.binary(), nullable=False, metadata={"doc": "polygon in the native CRS"}),
        pa.field("geometry_lonlat_wkb", pa.binary(), metadata={"doc": "polygon in lon/lat"}),
    ]
)


def checked_scene_id(scene_id: str) -> str:
    """``scene_id`` when it is safe inside a Delta predicate and a folder name, else ValueError."""
    if not isinstance(scene_id, str) or not _SCENE_ID.match(scene_id) or ".." in scene_id:
        raise ValueError(
            f"scene id {scene_id!r} is not a safe identifier (letters, digits, '.', '_', '-'); scene ids come "
            "from scenes.grouping, so this partition key was not created by satlake"
        )
    return scene_id


def replace_rows(
    lakehouse: Lakehouse,
    table: TableRef,
    data: pa.Table,
    column: str,
    value: str,
    partition_by: list[str] | None = None,
) -> int:
    """Replace exactly the rows of ``table`` whose ``column`` equals ``value`` with ``data`` (one commit).

    Re-running a scene therefore leaves the table as if it ran once. Concurrent runs of other scenes may
    commit in between: a conflicting commit is retried, since each run only touches its own rows.
    """
    checked_scene_id(value)
    mismatched = [v for v in data.column(column).to_pylist() if v != value] if data.num_rows else []
    if mismatched:
        raise ValueError(f"{table}: rows for {column}={mismatched[0]!r} in a replacement of {column}={value!r}")
    return lakehouse.replace_where(
        table,
        data,
        f"{column} = '{value}'",
        partition_by=partition_by or [],
        commit_metadata={"satlake.replace": f"{column}={value}"},
        retries=COMMIT_RETRIES - 1,
    )


def read_scene_rows(lakehouse: Lakehouse, table: TableRef, scene_id: str, column: str = "scene_id") -> pa.Table:
    """Rows of ``table`` for one scene (empty when the table or the rows do not exist)."""
    rows = lakehouse.read(table, filters=[(column, "=", scene_id)])
    return rows if rows is not None else pa.table({})


# --- SceneMetadata <-> JSON ---------------------------------------------------------------------------------


def metadata_to_json(meta: SceneMetadata) -> str:
    data = asdict(meta)
    data["acquired_at"] = meta.acquired_at.isoformat() if meta.acquired_at else None
    return json.dumps(data, sort_keys=True)


def metadata_from_json(text: str) -> SceneMetadata:
    data: dict[str, Any] = json.loads(text)
    data["bands"] = tuple(BandInfo(**band) for band in data["bands"])
    data["files"] = tuple(SceneFile(**item) for item in data["files"])
    data["transform"] = tuple(data["transform"])
    data["bounds_native"] = tuple(data["bounds_native"])
    if data["bounds_geographic"] is not None:
        data["bounds_geographic"] = tuple(data["bounds_geographic"])
    if data["acquired_at"] is not None:
        data["acquired_at"] = datetime.fromisoformat(data["acquired_at"])
    return SceneMetadata(**data)


def raw_scene_row(meta: SceneMetadata, raw_prefix: str, landing_keys: list[str]) -> pa.Table:
    """The raw/scenes row of a scene."""
    geo = meta.bounds_geographic or (None, None, None, None)
    first = meta.bands[0]
    row = {
        "scene_id": meta.scene_id,
        "collection": meta.collection,
        "body": meta.body,
        "crs_epsg": meta.crs_epsg,
        "crs_wkt": meta.crs_wkt,
        "width": meta.width,
        "height": meta.height,
        "native_xmin": meta.bounds_native[0],
        "native_ymin": meta.bounds_native[1],
        "native_xmax": meta.bounds_native[2],
        "native_ymax": meta.bounds_native[3],
        "bbox_xmin": geo[0],
        "bbox_ymin": geo[1],
        "bbox_xmax": geo[2],
        "bbox_ymax": geo[3],
        "band_count": len(meta.bands),
        "band_names": [band.name for band in meta.bands],
        "dtype": first.dtype,
        "nodata": first.nodata,
        "acquired_at": meta.acquired_at,
        "platform": meta.platform,
        "instrument": meta.instrument,
        "cloud_cover": meta.cloud_cover,
        "sun_azimuth": meta.sun_azimuth,
        "sun_elevation": meta.sun_elevation,
        "raw_prefix": raw_prefix,
        "files_json": json.dumps([asdict(f) for f in meta.files]),
        "landing_keys": sorted(landing_keys),
        "metadata_json": metadata_to_json(meta),
        "ingested_at": datetime.now(UTC),
    }
    return pa.Table.from_pylist([row], schema=RAW_SCENES_SCHEMA)


def load_scene_metadata(lakehouse: Lakehouse, scene_id: str) -> tuple[SceneMetadata, str]:
    """(metadata, raw prefix) of a scene from raw/scenes; ValueError when raw/scenes has no row for it."""
    rows = read_scene_rows(lakehouse, RAW_SCENES, scene_id)
    if rows.num_rows == 0:
        raise ValueError(
            f"scene {scene_id!r} has no row in {RAW_SCENES}: materialize raw/scenes for this partition first "
            "(or look in raw.scene_rejects: it may have been quarantined)"
        )
    return metadata_from_json(rows.column("metadata_json")[0].as_py()), rows.column("raw_prefix")[0].as_py()
