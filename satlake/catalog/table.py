"""The Delta catalog table: one row per STAC item, with top-level bbox columns and a coarse cell key, and its
search layout.

The four ``bbox_*`` DOUBLE columns let Trino and DuckDB skip files and row groups on a bounding-box query (min/max
statistics); rows in :func:`search_layout` order make those statistics tight. ``item_json`` keeps the full item so
nothing is lost by flattening.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import shapely
from deltalake import ColumnProperties, WriterProperties
from shapely.geometry import shape

from satlake.catalog.items import BODY_BBOX_FIELD, EARTH, item_body, parse_item_datetime
from satlake.resources.lakehouse import TableRef
from satlake.scenes.cells import scene_cell_key

CATALOG_ITEMS = TableRef("catalog", "items")  # every domain's STAC items, one row each

CELL_KEY_PRECISION = 3  # geohash characters: cells of about 156 km x 156 km at the equator

# Geohash order is a Z-order curve, so rows sorted by cell put neighbours on the ground into the same row group;
# antimeridian crossers (whose bbox spans the whole longitude range in min/max terms) and each body are kept
# apart so they do not widen the statistics of ordinary Earth row groups. Time last, for within-cell order.
SEARCH_LAYOUT_SORT_KEYS: tuple[tuple[str, str], ...] = (
    ("body", "ascending"),
    ("crosses_antimeridian", "ascending"),
    ("cell_key", "ascending"),
    ("datetime", "ascending"),
)
# The row group is the unit a search decodes to return an item (the embedded index reads whole row groups of
# item_json) and the unit Trino and DuckDB skip by statistics. Each group costs a reader metadata to parse and a
# statistics test; at a million items, 1,024 rows cost the embedded search 1.4 ms per returned group (2.3 ms at
# 2,048, 0.7 ms at 512) while DuckDB's one-shot search slows from 82 ms (2,048) to 144 (1,024) and 229 ms (512).
SEARCH_LAYOUT_ROW_GROUP_ROWS = 1_024
# Data files of the search layout are cut at about this size, so each file covers one patch of the sorted order
# (one region of the ground) and its min/max in the Delta log let Trino and DuckDB drop whole files at planning,
# before any footer is read. At a million items (128 MB), 2 files of 107 and 21 MB made Trino plan 18 splits and
# parse both footers per split; 31 files of 4 MiB took its warm searches from 306/365/282 ms to 180/219/171 ms
# (same JVM, interleaved), and DuckDB's one-shot search from 134/205/109 to 102/159/79 ms. 2 and 1 MiB did no
# better for Trino and worse for DuckDB; the embedded index answers alike at every size.
SEARCH_LAYOUT_FILE_BYTES = 4 * 1024 * 1024
# Columns no search filters on: min/max statistics of whole JSON documents (a kilobyte each, stored twice) made up
# most of every file footer, which each DuckDB or Trino query parses, so they are not written.
UNFILTERED_COLUMNS = ("geometry_wkb", "assets_json", "item_json")

CATALOG_TABLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False, metadata={"doc": "STAC item id (the scene id)"}),
        pa.field("collection", pa.string(), nullable=False, metadata={"doc": "STAC collection id"}),
        pa.field("datetime", pa.timestamp("us", tz="UTC"), nullable=False, metadata={"doc": "acquisition time"}),
        pa.field("date", pa.date32(), nullable=False, metadata={"doc": "UTC date of datetime (partition key)"}),
        pa.field("platform", pa.string(), metadata={"doc": "e.g. landsat-8"}),
        pa.field("instruments", pa.list_(pa.string()), metadata={"doc": "e.g. [oli]"}),
        pa.field("cloud_cover", pa.float64(), metadata={"doc": "eo:cloud_cover, percent; null when unknown"}),
        pa.field("bbox_xmin", pa.float64(), metadata={"doc": "west longitude (Earth only)"}),
        pa.field("bbox_ymin", pa.float64(), metadata={"doc": "south latitude (Earth only)"}),
        pa.field("bbox_xmax", pa.float64(), metadata={"doc": "east longitude; < bbox_xmin across the antimeridian"}),
        pa.field("bbox_ymax", pa.float64(), metadata={"doc": "north latitude (Earth only)"}),
        pa.field("crosses_antimeridian", pa.bool_(), nullable=False, metadata={"doc": "bbox_xmin > bbox_xmax"}),
        pa.field(
            "cell_key",
            pa.string(),
            metadata={"doc": "geohash-3 of the bbox centre; '<body>-' prefix off Earth"},
        ),
        pa.field("body", pa.string(), nullable=False, metadata={"doc": "target body: earth, mars, moon, ..."}),
        pa.field("geometry_wkb", pa.binary(), metadata={"doc": "item geometry, WKB lon/lat WGS 84 (Earth only)"}),
        pa.field("proj_code", pa.string(), metadata={"doc": "proj:code of the native CRS, e.g. EPSG:32633"}),
        pa.field("gsd", pa.float64(), metadata={"doc": "ground sample distance in metres, when metric"}),
        pa.field("asset_keys", pa.list_(pa.string()), nullable=False, metadata={"doc": "sorted asset keys"}),
        pa.field("assets_json", pa.string(), nullable=False, metadata={"doc": "the item's assets object, JSON"}),
        pa.field("item_json", pa.string(), nullable=False, metadata={"doc": "the whole STAC item, JSON"}),
    ]
)


def cell_key(bbox: list[float] | tuple[float, ...] | None, body: str = EARTH) -> str | None:
    """The scene cell as the COG layout computes it (scenes.cells), at catalog precision; None if no bbox."""
    if not bbox:
        return None
    west, south, east, north = bbox[0], bbox[1], bbox[-2], bbox[-1]
    return scene_cell_key(body, (west, south, east, north), CELL_KEY_PRECISION)


def _catalog_row(item: Mapping[str, Any]) -> dict[str, Any]:
    properties = item["properties"]
    moment = parse_item_datetime(properties.get("datetime") or properties["start_datetime"])
    body = item_body(item)
    bbox = item.get("bbox") if body == EARTH else None
    if bbox is not None and len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    geometry = item.get("geometry")
    cell_bbox = bbox if body == EARTH else properties.get(BODY_BBOX_FIELD)
    assets = item.get("assets", {})
    return {
        "id": item["id"],
        "collection": item["collection"],
        "datetime": moment,
        "date": moment.date(),
        "platform": properties.get("platform"),
        "instruments": properties.get("instruments"),
        "cloud_cover": properties.get("eo:cloud_cover"),
        "bbox_xmin": bbox[0] if bbox else None,
        "bbox_ymin": bbox[1] if bbox else None,
        "bbox_xmax": bbox[2] if bbox else None,
        "bbox_ymax": bbox[3] if bbox else None,
        "crosses_antimeridian": bool(bbox) and bbox[0] > bbox[2],
        "cell_key": cell_key(cell_bbox, body),
        "body": body,
        "geometry_wkb": shapely.to_wkb(shape(geometry)) if geometry and body == EARTH else None,
        "proj_code": properties.get("proj:code"),
        "gsd": properties.get("gsd"),
        "asset_keys": sorted(assets),
        "assets_json": json.dumps(assets, sort_keys=True, separators=(",", ":")),
        "item_json": json.dumps(dict(item), sort_keys=True, separators=(",", ":")),
    }


def catalog_rows(items: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows of the catalog table (schema :data:`CATALOG_TABLE_SCHEMA`) for STAC items built by items.py."""
    rows = []
    for item in items:
        if not item.get("collection"):
            raise ValueError(f"item {item.get('id')!r} has no collection; the catalog table needs one per row")
        rows.append(_catalog_row(item))
    return pa.Table.from_pylist(rows, schema=CATALOG_TABLE_SCHEMA)


def search_layout(rows: pa.Table) -> pa.Table:
    """``rows`` of the catalog table in the order that makes bbox searches skip the most (see the sort keys)."""
    return rows.take(pc.sort_indices(rows, sort_keys=list(SEARCH_LAYOUT_SORT_KEYS)))


def search_layout_writer_properties() -> WriterProperties:
    """Parquet settings of the search layout: small row groups, compressed pages, statistics only where a search
    can use them."""
    no_statistics = ColumnProperties(statistics_enabled="NONE")
    return WriterProperties(
        max_row_group_size=SEARCH_LAYOUT_ROW_GROUP_ROWS,
        compression="ZSTD",
        column_properties=dict.fromkeys(UNFILTERED_COLUMNS, no_statistics),
    )
