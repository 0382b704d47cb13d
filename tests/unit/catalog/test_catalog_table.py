"""The catalog table: column names and types, bbox columns, cell keys and WKB geometry per kind of scene."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
import shapely

from satlake.catalog.table import CATALOG_TABLE_SCHEMA, catalog_rows, cell_key
from satlake.scenes.cells import bounds_center, geohash_encode


@pytest.fixture
def rows(four_items) -> dict[str, dict]:
    table = catalog_rows(four_items)
    return {row["id"]: row for row in table.to_pylist()}


def test_table_has_the_documented_schema(four_items) -> None:
    table = catalog_rows(four_items)
    assert table.schema.equals(CATALOG_TABLE_SCHEMA)
    assert table.num_rows == 4
    for column in ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax", "cloud_cover"):
        assert table.schema.field(column).type == pa.float64()
    assert table.schema.field("datetime").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("geometry_wkb").type == pa.binary()


def test_earth_row_has_bbox_cell_and_lon_lat_geometry(rows) -> None:
    row = rows["LC08_T33_20240501"]
    assert row["datetime"] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert row["date"] == date(2024, 5, 1)
    assert (row["bbox_xmin"], row["bbox_ymin"], row["bbox_xmax"], row["bbox_ymax"]) == (
        15.0,
        45.126466,
        15.038166,
        45.153477,
    )
    assert row["crosses_antimeridian"] is False
    assert row["cell_key"] == geohash_encode(45.1399715, 15.019083, 3) == "u24"
    assert row["body"] == "earth"
    assert row["platform"] == "landsat-8"
    assert row["cloud_cover"] == 12.5
    assert row["proj_code"] == "EPSG:32633"
    assert shapely.from_wkb(row["geometry_wkb"]).bounds == (15.0, 45.126466, 15.038166, 45.153477)
    assert row["asset_keys"] == ["cog", "mtl", "thumbnail"]
    assert json.loads(row["item_json"])["id"] == "LC08_T33_20240501"
    assert set(json.loads(row["assets_json"])) == {"cog", "mtl", "thumbnail"}


def test_antimeridian_row_is_flagged_and_its_cell_sits_on_the_dateline(rows) -> None:
    row = rows["fiji_20240503"]
    assert row["bbox_xmin"] == 179.5 and row["bbox_xmax"] == -179.5
    assert row["crosses_antimeridian"] is True
    assert bounds_center((179.5, -17.5, -179.5, -16.5)) == (-180.0, -17.0)
    assert row["cell_key"] == geohash_encode(-17.0, -180.0, 3) == "2hb"


def test_mars_row_has_no_earth_bbox_or_geometry_but_a_body_cell(rows) -> None:
    row = rows["ctx_gale_20240201"]
    assert row["body"] == "mars"
    assert row["bbox_xmin"] is None and row["bbox_ymax"] is None
    assert row["geometry_wkb"] is None
    assert row["crosses_antimeridian"] is False
    assert row["cell_key"] == "mars-" + geohash_encode(-4.5, 137.5, 3)
    assert row["proj_code"] == "IAU_2015:49910"
    assert row["cloud_cover"] is None


def test_cell_key_is_the_scene_layout_cell_at_catalog_precision() -> None:
    assert cell_key([10.40744, 57.64911, 10.40744, 57.64911]) == "u4p"  # geohash u4pruydqqvj
    assert cell_key(None) is None
    assert cell_key([10.0, 57.0, 11.0, 58.0], "moon").startswith("moon-")


def test_item_without_collection_is_refused(four_items) -> None:
    item = dict(four_items[0])
    del item["collection"]
    with pytest.raises(ValueError, match="has no collection"):
        catalog_rows([item])
