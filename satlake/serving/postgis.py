"""The PostGIS serving tables (schema ``serving``): their DDL with spatial indexes, the conversion of lake rows
into their rows, and the one write they all use, which replaces a partition's rows in one transaction.

Geometry is ``geometry(Geometry, 4326)``: lon/lat on WGS 84, for Earth only. Items and polygons of another body
(Mars, the Moon) have no place on Earth's coordinates, so they are kept out of these tables; the STAC API
serves them, found by their ``ssys:targets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

SCHEMA = "serving"
SRID = 4326
EARTH = "earth"
GEOMETRY = "geometry"
DDL_LOCK = "satlake.serving.ddl"  # serialises CREATE TABLE/INDEX of concurrent runs (both would race in pg_type)


@dataclass(frozen=True)
class ServingTable:
    """A table of the serving schema: its columns (name, SQL type), primary key and whether it has a footprint
    (a ``geometry`` column written from WKB lon/lat, with a GIST index)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    spatial: bool

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(SCHEMA, self.name)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns] + ([GEOMETRY] if self.spatial else [])

    def create_statements(self) -> list[sql.Composed]:
        definitions = [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in self.columns]
        if self.spatial:
            definitions.append(
                sql.SQL("{} geometry(Geometry, {}) NOT NULL").format(sql.Identifier(GEOMETRY), sql.Literal(SRID))
            )
        definitions.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.key))))
        statements = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self.identifier, sql.SQL(", ").join(definitions))
        ]
        if self.spatial:
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING GIST ({})").format(
                    sql.Identifier(f"{self.name}_geometry_gist"), self.identifier, sql.Identifier(GEOMETRY)
                )
            )
        return statements

    def insert_statement(self) -> sql.Composed:
        values = [sql.Placeholder() for _ in self.columns]
        if self.spatial:
            values.append(sql.SQL("ST_SetSRID(ST_GeomFromWKB({}), {})").format(sql.Placeholder(), sql.Literal(SRID)))
        return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self.identifier, sql.SQL(", ").join(map(sql.Identifier, self.column_names)), sql.SQL(", ").join(values)
        )


CATALOG_FOOTPRINTS = ServingTable(
    name="catalog_footprints",
    columns=(
        ("id", "text NOT NULL"),
        ("collection", "text NOT NULL"),
        ("datetime", "timestamptz NOT NULL"),
        ("platform", "text"),
        ("cloud_cover", "double precision"),
        ("body", "text NOT NULL"),
    ),
    key=("id",),
    spatial=True,
)
FOREST_CHANGE = ServingTable(
    name="forest_change",
    columns=(
        ("scene_id", "text NOT NULL"),
        ("polygon_index", "integer NOT NULL"),
        ("before_scene_id", "text NOT NULL"),
        ("collection", "text NOT NULL"),
        ("tile", "text NOT NULL"),
        ("before_date", "date"),
        ("after_date", "date"),
        ("area_ha", "double precision NOT NULL"),
        ("mean_ndvi_drop", "double precision"),
        ("pixel_count", "bigint NOT NULL"),
        ("crs_epsg", "integer"),
    ),
    key=("scene_id", "polygon_index"),
    spatial=True,
)
_HEALTH_COUNTS = (
    "anomaly_count",
    "range_violation_count",
    "statistical_outlier_count",
    "watch_alarm_count",
    "warning_alarm_count",
    "distress_alarm_count",
    "critical_alarm_count",
    "severe_alarm_count",
)
_HEALTH_MEASURES = (
    "coverage_ratio",
    "median_interval_s",
    "battery_min_pct",
    "battery_avg_pct",
    "battery_max_pct",
    "max_depth_of_discharge_pct",
    "temp_min_c",
    "temp_max_c",
    "temp_range_c",
    "altitude_avg_km",
    "altitude_drift_km",
    "outlier_share",
)
SATELLITE_HEALTH = ServingTable(
    name="satellite_health",
    columns=(
        ("event_date", "date NOT NULL"),
        ("satellite_name", "text NOT NULL"),
        ("health_status", "text NOT NULL"),
        ("status_reasons", "text"),
        ("reading_count", "bigint NOT NULL"),
        ("expected_reading_count", "bigint"),
        ("first_reading_at", "timestamptz"),
        ("last_reading_at", "timestamptz"),
        *((name, "double precision") for name in _HEALTH_MEASURES),
        *((name, "bigint NOT NULL") for name in _HEALTH_COUNTS),
    ),
    key=("event_date", "satellite_name"),
    spatial=False,
)
SERVING_TABLES = (CATALOG_FOOTPRINTS, FOREST_CHANGE, SATELLITE_HEALTH)


def ensure_serving_tables(connection: psycopg.Connection) -> None:
    """The ``serving`` schema, its tables and their spatial indexes (idempotent; PostGIS must be installed)."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [DDL_LOCK])
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        for table in SERVING_TABLES:
            for statement in table.create_statements():
                connection.execute(statement)


def replace_partition(
    connection: psycopg.Connection,
    table: ServingTable,
    predicate: sql.Composable,
    params: Sequence[Any],
    rows: Sequence[Sequence[Any]],
) -> int:
    """Delete the rows matching ``predicate`` (bound ``params``) and insert ``rows``, in one transaction: a
    re-run of a partition leaves exactly the rows of its last run. Returns the rows inserted."""
    with connection.transaction():
        connection.execute(sql.SQL("DELETE FROM {} WHERE ").format(table.identifier) + predicate, params)
        with connection.cursor() as cursor:
            cursor.executemany(table.insert_statement(), rows)
    return len(rows)


def _key_in(column: str) -> sql.Composed:
    return sql.SQL("{} = ANY(%s)").format(sql.Identifier(column))


def catalog_footprint_rows(items: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of ``serving.catalog_footprints`` for the Earth items of catalog.items rows (others are left out)."""
    names = [name for name, _ in CATALOG_FOOTPRINTS.columns]
    return [
        (*(row[name] for name in names), row["geometry_wkb"])
        for row in items.select([*names, "geometry_wkb"]).to_pylist()
        if row["body"] == EARTH and row["geometry_wkb"] is not None
    ]


def forest_change_rows(polygons: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of ``serving.forest_change`` from gold.forest_change rows of Earth scenes (lon/lat polygons)."""
    names = [name for name, _ in FOREST_CHANGE.columns]
    return [
        (*(row[name] for name in names), row["geometry_lonlat_wkb"])
        for row in polygons.select([*names, "geometry_lonlat_wkb"]).to_pylist()
        if row["geometry_lonlat_wkb"] is not None
    ]


def satellite_health_rows(health: pa.Table) -> list[tuple[Any, ...]]:
    """Rows of ``serving.satellite_health`` from gold.telemetry_daily_health rows."""
    names = [name for name, _ in SATELLITE_HEALTH.columns]
    return [tuple(row[name] for name in names) for row in health.select(names).to_pylist()]


def sync_scene_footprints(connection: psycopg.Connection, scene_ids: Sequence[str], items: pa.Table) -> int:
    """Replace the footprints of ``scene_ids`` with those of ``items`` (their catalog rows; none: removed)."""
    rows = catalog_footprint_rows(items)
    return replace_partition(connection, CATALOG_FOOTPRINTS, _key_in("id"), [list(scene_ids)], rows)


def sync_scene_forest_change(
    connection: psycopg.Connection, scene_ids: Sequence[str], polygons: pa.Table, bodies: Mapping[str, str]
) -> int:
    """Replace the forest-change polygons keyed by ``scene_ids`` with ``polygons``, keeping those of scenes
    whose body (``bodies``: scene id -> body) is Earth: another body's lon/lat is not Earth's."""
    earth = [scene_id for scene_id in scene_ids if bodies.get(scene_id) == EARTH]
    on_earth = polygons.filter(pc.is_in(polygons.column("scene_id"), pa.array(earth, pa.string())))
    rows = forest_change_rows(on_earth)
    return replace_partition(connection, FOREST_CHANGE, _key_in("scene_id"), [list(scene_ids)], rows)


def sync_health_days(connection: psycopg.Connection, first: date, last: date, health: pa.Table) -> int:
    """Replace the satellite health of the days ``first``..``last`` (inclusive) with ``health``."""
    predicate = sql.SQL("{} BETWEEN %s AND %s").format(sql.Identifier("event_date"))
    return replace_partition(connection, SATELLITE_HEALTH, predicate, [first, last], satellite_health_rows(health))
