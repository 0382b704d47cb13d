"""The serving/* Dagster assets: a scene's or a day's partition read from a real Delta lake and copied into a
real PostGIS, twice with the same rows; and their absence in embedded mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from deltalake import write_deltalake
from shapely.geometry import box

from satlake.partitions import DAILY_PARTITIONS
from satlake.resources.lakehouse import Lakehouse
from satlake.resources.postgis import PostgisServing
from satlake.scenes.assets import SCENE_PARTITIONS
from satlake.scenes.tables import CATALOG_ITEMS, GOLD_FOREST_CHANGE
from satlake.serving.assets import serving_assets
from satlake.serving.definitions import serving_definitions, serving_note
from satlake.settings import Mode, Settings
from satlake.telemetry.tables import GOLD_TELEMETRY_DAILY_HEALTH
from tests.unit.serving.postgis_fixtures import catalog_table, health_table, polygons_table, private_postgis

EARTH_SCENE = "LC08_T33_20240501"
MARS_SCENE = "ctx_gale_20240201"


@pytest.fixture(scope="module")
def serving() -> Iterator[PostgisServing]:
    with private_postgis() as cluster:
        yield cluster


@pytest.fixture
def lakehouse(tmp_path: Path) -> Lakehouse:
    lake = Lakehouse(root_uri=str(tmp_path / "lake"))
    write_deltalake(lake.uri(CATALOG_ITEMS), catalog_table())
    polygons = [
        polygons_table(EARTH_SCENE, [box(15.0, 45.0, 15.01, 45.01)]),
        polygons_table(MARS_SCENE, [box(1, 1, 2, 2)]),
    ]
    for table in polygons:
        write_deltalake(lake.uri(GOLD_FOREST_CHANGE), table, mode="append")
    return lake


def _materialize(
    lakehouse: Lakehouse, serving: PostgisServing, partition: str, last: str | None = None
) -> dg.ExecuteInProcessResult:
    """One run of the scene assets for ``partition``, or for the range ``partition``..``last`` (as a backfill
    or the automation runs several scenes at once)."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SCENE_PARTITIONS.name, [EARTH_SCENE, MARS_SCENE])  # type: ignore[arg-type]
    scene_assets = [asset for asset in serving_assets if asset.partitions_def == SCENE_PARTITIONS]
    resources = {"lakehouse": lakehouse, "postgis": serving}
    if last is None:
        return dg.materialize(scene_assets, partition_key=partition, resources=resources, instance=instance)
    tags = {ASSET_PARTITION_RANGE_START_TAG: partition, ASSET_PARTITION_RANGE_END_TAG: last}
    return dg.materialize(scene_assets, tags=tags, resources=resources, instance=instance)


def _materializations(result: dg.ExecuteInProcessResult, table: str) -> list[dg.AssetMaterialization]:
    key = dg.AssetKey(["serving", table])
    return [event.materialization for event in result.get_asset_materialization_events() if event.asset_key == key]


def _metadata(result: dg.ExecuteInProcessResult, table: str) -> dict[str, object]:
    """The metadata of the asset's materialization (a range run records the same on each partition)."""
    return {key: value.value for key, value in _materializations(result, table)[0].metadata.items()}


def _serving_rows(serving: PostgisServing) -> list[tuple[object, ...]]:
    with psycopg.connect(serving.conninfo) as connection:
        footprints = connection.execute(
            "SELECT id, body, ST_AsText(ST_Centroid(geometry)) FROM serving.catalog_footprints ORDER BY id"
        ).fetchall()
        change = connection.execute(
            "SELECT scene_id, polygon_index, area_ha FROM serving.forest_change ORDER BY 1, 2"
        ).fetchall()
    return footprints + change


def test_a_scene_partition_copies_its_footprint_and_polygons_once(
    lakehouse: Lakehouse, serving: PostgisServing
) -> None:
    result = _materialize(lakehouse, serving, EARTH_SCENE)
    assert result.success
    first = _serving_rows(serving)
    assert [row[:2] for row in first] == [(EARTH_SCENE, "earth"), (EARTH_SCENE, 0)]
    assert _materialize(lakehouse, serving, EARTH_SCENE).success
    assert _serving_rows(serving) == first
    metadata = _metadata(result, "forest_change")
    assert metadata["dagster/row_count"] == 1
    assert metadata["table"] == "serving.forest_change"


def test_a_mars_scene_partition_puts_nothing_on_earth(lakehouse: Lakehouse, serving: PostgisServing) -> None:
    before = _serving_rows(serving)
    result = _materialize(lakehouse, serving, MARS_SCENE)
    assert result.success
    assert _serving_rows(serving) == before
    assert _metadata(result, "catalog_footprints")["body"] == "mars"
    assert _metadata(result, "forest_change")["dagster/row_count"] == 0


def test_a_range_run_copies_every_scene_of_the_range(lakehouse: Lakehouse, serving: PostgisServing) -> None:
    with serving.connect() as connection:
        connection.execute("TRUNCATE serving.catalog_footprints, serving.forest_change")
    result = _materialize(lakehouse, serving, EARTH_SCENE, MARS_SCENE)
    assert result.success
    assert [row[:2] for row in _serving_rows(serving)] == [(EARTH_SCENE, "earth"), (EARTH_SCENE, 0)]
    assert _metadata(result, "forest_change")["body"] == "earth, mars"
    partitions = sorted(event.partition or "" for event in _materializations(result, "catalog_footprints"))
    assert partitions == sorted([EARTH_SCENE, MARS_SCENE])


def test_a_day_partition_copies_that_days_health(lakehouse: Lakehouse, serving: PostgisServing) -> None:
    day = date.fromisoformat(DAILY_PARTITIONS.get_last_partition_key())  # type: ignore[arg-type]
    for offset, status in ((0, "critical"), (-1, "ok")):
        write_deltalake(
            lakehouse.uri(GOLD_TELEMETRY_DAILY_HEALTH),
            health_table(day + timedelta(days=offset), {"SAT-9": status}),
            mode="append",
        )
    health_asset = next(asset for asset in serving_assets if asset.partitions_def == DAILY_PARTITIONS)
    resources = {"lakehouse": lakehouse, "postgis": serving}
    assert dg.materialize([health_asset], partition_key=day.isoformat(), resources=resources).success
    with psycopg.connect(serving.conninfo) as connection:
        rows = connection.execute(
            "SELECT event_date, satellite_name, health_status FROM serving.satellite_health "
            "WHERE satellite_name = 'SAT-9'"
        ).fetchall()
    assert rows == [(day, "SAT-9", "critical")]


def test_embedded_mode_has_no_serving_layer_and_says_so_in_one_line(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    assert not list(serving_definitions(settings).assets or [])
    note = serving_note(settings)
    assert "stack mode" in note and "\n" not in note


def test_stack_mode_registers_the_three_assets_on_their_upstream(tmp_path: Path) -> None:
    definitions = serving_definitions(Settings(root=tmp_path, mode=Mode.STACK))
    parents = {
        spec.key.to_user_string(): sorted(dep.asset_key.to_user_string() for dep in spec.deps)
        for asset in definitions.assets or []
        for spec in asset.specs  # type: ignore[union-attr]
    }
    assert parents == {
        "serving/catalog_footprints": ["catalog/items"],
        "serving/forest_change": ["gold/forest_change"],
        "serving/satellite_health": ["gold/telemetry_daily_health"],
    }
