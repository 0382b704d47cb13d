"""The serving/* assets: copies of the catalog footprints, the forest-change polygons and the daily satellite
health in the PostGIS serving database (stack mode), each partition replaced in one transaction.

They follow their upstream like the dbt models: a scene's footprint and polygons are copied when its catalog
item or forest change is (re)built, a day's health when the dbt model rebuilds that day.
"""

from collections.abc import Callable

import dagster as dg
import pyarrow as pa

from satlake.automation import FOLLOW_UPSTREAM_SCENES
from satlake.partitions import DAILY_PARTITIONS, partition_dates
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.resources.postgis import PostgisServing
from satlake.scenes.assets import SCENE_PARTITIONS
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE, checked_scene_id
from satlake.serving.postgis import (
    CATALOG_FOOTPRINTS,
    FOREST_CHANGE,
    SATELLITE_HEALTH,
    ServingTable,
    ensure_serving_tables,
    sync_health_days,
    sync_scene_footprints,
    sync_scene_forest_change,
)
from satlake.telemetry.curated import FOLLOW_UPSTREAM_DAYS
from satlake.telemetry.tables import GOLD_TELEMETRY_DAILY_HEALTH

GROUP = "serving"
KINDS = {"postgres", "postgis"}
CATALOG_ITEMS_KEY = dg.AssetKey(["catalog", "items"])
GOLD_FOREST_CHANGE_KEY = dg.AssetKey(["gold", "forest_change"])
GOLD_DAILY_HEALTH_KEY = dg.AssetKey(["gold", "telemetry_daily_health"])


def serving_key(table: ServingTable) -> dg.AssetKey:
    return dg.AssetKey([GROUP, table.name])


def _metadata(postgis: PostgisServing, table: ServingTable, rows: int, **extra: object) -> dict[str, object]:
    return {
        "dagster/row_count": rows,
        "table": f"serving.{table.name}",
        "database": postgis.describe(),
        **extra,
    }


def _scene_ids(context: dg.AssetExecutionContext) -> list[str]:
    """The run's scene partitions: one, or a range when a backfill or the automation runs several at once."""
    return [checked_scene_id(key) for key in context.partition_keys]


def _scene_rows(lakehouse: Lakehouse, table: TableRef, column: str, scene_ids: list[str]) -> pa.Table:
    rows = lakehouse.read(table, filters=[(column, "in", scene_ids)])
    if rows is None:
        raise dg.Failure(f"scenes {scene_ids[0]}..{scene_ids[-1]}: lake table {table} does not exist; build it first")
    return rows


def scene_serving_asset(
    table: ServingTable, upstream: dg.AssetKey, description: str
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """The decorator of a serving asset partitioned by scene like ``upstream``, which it follows."""
    return dg.asset(
        key=serving_key(table),
        group_name=GROUP,
        kinds=KINDS,
        partitions_def=SCENE_PARTITIONS,
        deps=[upstream],
        automation_condition=FOLLOW_UPSTREAM_SCENES,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=description,
    )


@scene_serving_asset(
    CATALOG_FOOTPRINTS,
    CATALOG_ITEMS_KEY,
    "The scene's catalog item footprint (id, collection, datetime, platform, cloud cover, body, geometry in "
    "EPSG:4326 with a GIST index) in serving.catalog_footprints of the PostGIS serving database. Items of another "
    "body than Earth are left out (their lon/lat is not Earth's).",
)
def serving_catalog_footprints(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    postgis: dg.ResourceParam[PostgisServing],
) -> dg.MaterializeResult:
    scene_ids = _scene_ids(context)
    items = _scene_rows(lakehouse, CATALOG_ITEMS, "id", scene_ids)
    with postgis.connect() as connection:
        ensure_serving_tables(connection)
        written = sync_scene_footprints(connection, scene_ids, items)
    bodies = sorted(set(items.column("body").to_pylist()))
    context.log.info(
        f"scenes {scene_ids[0]}..{scene_ids[-1]} ({len(scene_ids)}): {written} footprint(s) in "
        f"serving.catalog_footprints (bodies {bodies})"
    )
    return dg.MaterializeResult(metadata=_metadata(postgis, CATALOG_FOOTPRINTS, written, body=", ".join(bodies)))


@scene_serving_asset(
    FOREST_CHANGE,
    GOLD_FOREST_CHANGE_KEY,
    "The scene's forest-loss polygons (area, both dates, lon/lat geometry in EPSG:4326 with a GIST index) in "
    "serving.forest_change of the PostGIS serving database; polygons of another body are left out.",
)
def serving_forest_change(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    postgis: dg.ResourceParam[PostgisServing],
) -> dg.MaterializeResult:
    scene_ids = _scene_ids(context)
    polygons = _scene_rows(lakehouse, GOLD_FOREST_CHANGE, "scene_id", scene_ids)
    items = _scene_rows(lakehouse, CATALOG_ITEMS, "id", scene_ids).select(["id", "body"]).to_pylist()
    bodies = {item["id"]: item["body"] for item in items}
    with postgis.connect() as connection:
        ensure_serving_tables(connection)
        written = sync_scene_forest_change(connection, scene_ids, polygons, bodies)
    context.log.info(
        f"scenes {scene_ids[0]}..{scene_ids[-1]} ({len(scene_ids)}): {written} of {polygons.num_rows} polygons in "
        "serving.forest_change (the others are off Earth)"
    )
    return dg.MaterializeResult(
        metadata=_metadata(postgis, FOREST_CHANGE, written, body=", ".join(sorted(set(bodies.values()))))
    )


@dg.asset(
    key=serving_key(SATELLITE_HEALTH),
    group_name=GROUP,
    kinds=KINDS,
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[GOLD_DAILY_HEALTH_KEY],
    automation_condition=FOLLOW_UPSTREAM_DAYS,
    description="Each satellite's daily health (status, reasons, coverage, battery, temperature, altitude, alarm "
    "counts) in serving.satellite_health of the PostGIS serving database, keyed by day and satellite.",
)
def serving_satellite_health(
    context: dg.AssetExecutionContext,
    lakehouse: dg.ResourceParam[Lakehouse],
    postgis: dg.ResourceParam[PostgisServing],
) -> dg.MaterializeResult:
    first, last = partition_dates(context)
    health = lakehouse.read(
        GOLD_TELEMETRY_DAILY_HEALTH, filters=[("event_date", ">=", first), ("event_date", "<=", last)]
    )
    if health is None:
        raise dg.Failure(f"lake table {GOLD_TELEMETRY_DAILY_HEALTH} does not exist; build the dbt models first")
    with postgis.connect() as connection:
        ensure_serving_tables(connection)
        written = sync_health_days(connection, first, last, health)
    context.log.info(f"days {first}..{last}: {written} satellite-days in serving.satellite_health")
    return dg.MaterializeResult(metadata=_metadata(postgis, SATELLITE_HEALTH, written, window=f"{first}..{last}"))


serving_assets = [serving_catalog_footprints, serving_forest_change, serving_satellite_health]
