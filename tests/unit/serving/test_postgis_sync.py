"""The PostGIS serving tables against a real PostgreSQL + PostGIS: DDL and spatial indexes, idempotent
partition replacement, Earth-only footprints, and ST_Intersects on what QGIS would query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import shapely
from shapely.geometry import box

from satlake.resources.postgis import PostgisServing
from satlake.serving.postgis import (
    SERVING_TABLES,
    ensure_serving_tables,
    sync_health_days,
    sync_scene_footprints,
    sync_scene_forest_change,
)
from tests.unit.serving.postgis_fixtures import catalog_table, health_table, polygons_table, private_postgis

EARTH_SCENES = {"after_1": "earth", "after_2": "earth"}


@pytest.fixture(scope="module")
def serving() -> Iterator[PostgisServing]:
    with private_postgis() as cluster:
        yield cluster


@pytest.fixture
def connection(serving: PostgisServing) -> Iterator[psycopg.Connection]:
    with serving.connect() as connection:
        ensure_serving_tables(connection)
        for table in SERVING_TABLES:
            connection.execute(f"TRUNCATE serving.{table.name}")
        connection.commit()
        yield connection


def _rows(connection: psycopg.Connection, table: str, order: str) -> list[tuple[Any, ...]]:
    query = f"SELECT *, ST_AsEWKT(geometry) FROM serving.{table}" if table != "satellite_health" else (
        f"SELECT * FROM serving.{table}")  # fmt: skip
    return connection.execute(f"{query} ORDER BY {order}").fetchall()


def _intersecting(connection: psycopg.Connection, table: str, column: str, geometry: shapely.Geometry) -> list[str]:
    rows = connection.execute(
        f"SELECT {column} FROM serving.{table} WHERE ST_Intersects(geometry, ST_GeomFromText(%s, 4326)) ORDER BY 1",
        [geometry.wkt],
    ).fetchall()
    return [row[0] for row in rows]


def test_serving_tables_have_gist_indexes_on_4326_geometry(connection: psycopg.Connection) -> None:
    ensure_serving_tables(connection)  # a second run changes nothing and does not fail
    indexes = connection.execute(
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'serving' AND indexdef LIKE '%USING gist%'"
    ).fetchall()
    assert sorted(table for table, _ in indexes) == ["catalog_footprints", "forest_change"]
    columns = connection.execute(
        "SELECT f_table_name, srid FROM geometry_columns WHERE f_table_schema = 'serving' ORDER BY 1"
    ).fetchall()
    assert columns == [("catalog_footprints", 4326), ("forest_change", 4326)]


def test_footprints_keep_earth_items_only_and_a_rerun_leaves_identical_rows(connection: psycopg.Connection) -> None:
    catalog = catalog_table()
    ids = catalog.column("id").to_pylist()
    assert sync_scene_footprints(connection, ids, catalog) == 3
    first = _rows(connection, "catalog_footprints", "id")
    assert sync_scene_footprints(connection, ids, catalog) == 3
    assert _rows(connection, "catalog_footprints", "id") == first
    assert [row[0] for row in first] == ["LC08_T33_20240501", "arctic_20240420", "fiji_20240503"]
    assert {row[5] for row in first} == {"earth"}
    # The whole Earth finds every Earth item and never the Mars one (its lon/lat is Mars', not Earth's).
    assert _intersecting(connection, "catalog_footprints", "id", box(-180, -90, 180, 90)) == [
        "LC08_T33_20240501",
        "arctic_20240420",
        "fiji_20240503",
    ]
    assert _intersecting(connection, "catalog_footprints", "id", shapely.Point(15.02, 45.14)) == ["LC08_T33_20240501"]
    assert _intersecting(connection, "catalog_footprints", "id", shapely.Point(137.4, -4.6)) == []


def test_a_scene_gone_from_the_catalog_loses_its_footprint(connection: psycopg.Connection) -> None:
    catalog = catalog_table()
    sync_scene_footprints(connection, catalog.column("id").to_pylist(), catalog)
    assert sync_scene_footprints(connection, ["fiji_20240503"], catalog.slice(0, 0)) == 0
    remaining = [row[0] for row in _rows(connection, "catalog_footprints", "id")]
    assert remaining == ["LC08_T33_20240501", "arctic_20240420"]


def test_forest_change_replaces_a_scenes_polygons_and_is_found_by_st_intersects(
    connection: psycopg.Connection,
) -> None:
    clearing, road = box(15.0, 45.0, 15.01, 45.01), box(15.2, 45.2, 15.21, 45.3)
    both = polygons_table("after_1", [clearing, road])
    assert sync_scene_forest_change(connection, ["after_1"], both, EARTH_SCENES) == 2
    assert sync_scene_forest_change(connection, ["after_2"], polygons_table("after_2", [road]), EARTH_SCENES) == 1
    first = _rows(connection, "forest_change", "scene_id, polygon_index")
    sync_scene_forest_change(connection, ["after_1"], both, EARTH_SCENES)
    assert _rows(connection, "forest_change", "scene_id, polygon_index") == first
    assert _intersecting(connection, "forest_change", "scene_id", shapely.Point(15.005, 45.005)) == ["after_1"]
    assert _intersecting(connection, "forest_change", "scene_id", box(15.205, 45.25, 15.3, 45.4)) == [
        "after_1",
        "after_2",
    ]
    area = connection.execute(
        "SELECT area_ha, pixel_count FROM serving.forest_change WHERE scene_id = 'after_1' AND polygon_index = 1"
    ).fetchone()
    assert area == (13.5, 139)
    # Re-detected with one polygon only: the scene's other polygon goes, the other scene's stays.
    sync_scene_forest_change(connection, ["after_1"], polygons_table("after_1", [clearing]), EARTH_SCENES)
    keys = [(row[0], row[1]) for row in _rows(connection, "forest_change", "scene_id, polygon_index")]
    assert keys == [("after_1", 0), ("after_2", 0)]


def test_forest_change_of_another_body_stays_out(connection: psycopg.Connection) -> None:
    mars = polygons_table("mars_after", [box(137.0, -5.0, 137.5, -4.5)])
    earth = polygons_table("after_1", [box(15.0, 45.0, 15.01, 45.01)])
    both = pa.concat_tables([mars, earth])
    bodies = {"mars_after": "mars", "after_1": "earth"}
    assert sync_scene_forest_change(connection, ["mars_after", "after_1"], both, bodies) == 1
    assert _intersecting(connection, "forest_change", "scene_id", box(-180, -90, 180, 90)) == ["after_1"]


def test_health_days_are_replaced_day_by_day(connection: psycopg.Connection) -> None:
    may_1, may_2 = date(2024, 5, 1), date(2024, 5, 2)
    assert sync_health_days(connection, may_1, may_1, health_table(may_1, {"SAT-1": "ok", "SAT-2": "critical"})) == 2
    sync_health_days(connection, may_2, may_2, health_table(may_2, {"SAT-1": "degraded"}))
    first = _rows(connection, "satellite_health", "event_date, satellite_name")
    sync_health_days(connection, may_1, may_1, health_table(may_1, {"SAT-1": "ok", "SAT-2": "critical"}))
    assert _rows(connection, "satellite_health", "event_date, satellite_name") == first
    # A rebuilt day replaces only that day's rows.
    sync_health_days(connection, may_1, may_1, health_table(may_1, {"SAT-1": "ok"}))
    statuses = connection.execute(
        "SELECT event_date, satellite_name, health_status, critical_alarm_count FROM serving.satellite_health "
        "ORDER BY 1, 2"
    ).fetchall()
    assert statuses == [(may_1, "SAT-1", "ok", 0), (may_2, "SAT-1", "degraded", 0)]
