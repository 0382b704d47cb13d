"""The Mars dbt models as Dagster assets: keys, deps and group apart from telemetry's, the automation that follows
partitioned bronze, and a materialization that publishes whole tables to Delta (twice, replacing them)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from unittest import mock

import dagster as dg
import duckdb
import pytest
from deltalake import DeltaTable

from satlake.mars.dbt import FOLLOW_BRONZE, MarsBronzeMissing, bronze_sources, build_mars_dbt_assets, require_bronze
from satlake.resources.dbt_project import build_dbt_resource, ensure_dbt_manifest
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings
from satlake.telemetry.curated import build_curated_assets
from tests.unit.dbt.planted_mars import plant_bronze

MARS_KEYS = {"silver/mars_photos", "gold/mars_photos_per_sol", "gold/mars_drive_per_sol", "gold/mars_mission_timeline"}
BRONZE = [TableRef("bronze", "mars_manifests"), TableRef("bronze", "mars_photos"), TableRef("bronze", "mars_waypoints")]


def user_strings(keys: object) -> set[str]:
    return {key.to_user_string() for key in keys}  # type: ignore[attr-defined]


def test_the_mars_models_are_their_own_unpartitioned_assets(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    mars, telemetry = build_mars_dbt_assets(settings), build_curated_assets(settings)
    assert user_strings(mars.keys) == MARS_KEYS
    assert user_strings(telemetry.keys) == {
        "silver/telemetry_clean", "gold/telemetry_hourly", "gold/telemetry_anomalies", "gold/telemetry_daily_health",
    }  # fmt: skip
    deps = {key.to_user_string(): user_strings(parents) for key, parents in mars.asset_deps.items()}
    assert deps == {
        "silver/mars_photos": {"bronze/mars_photos"},
        "gold/mars_photos_per_sol": {"silver/mars_photos"},
        "gold/mars_drive_per_sol": {"bronze/mars_waypoints"},
        "gold/mars_mission_timeline": {"silver/mars_photos", "gold/mars_drive_per_sol", "bronze/mars_manifests"},
    }
    assert set(mars.group_names_by_key.values()) == {"mars"}
    assert set(telemetry.group_names_by_key.values()) == {"telemetry"}
    assert mars.partitions_def is None
    assert set(mars.automation_conditions_by_key.values()) == {FOLLOW_BRONZE}
    checks = {check.name for check in mars.check_keys}
    assert {"unique_mars_photos_id", "not_null_mars_photos_id"} <= checks
    assert not any("telemetry" in name for name in checks)


ROVERS = dg.StaticPartitionsDefinition(["curiosity", "spirit"])
MANIFESTS_MAY_FINISH = threading.Event()  # cleared: a manifests run stays in progress until it is set


@dg.asset(partitions_def=ROVERS)
def photos() -> None: ...


@dg.asset(partitions_def=ROVERS)
def manifests() -> None:
    assert MANIFESTS_MAY_FINISH.wait(timeout=60)


@dg.asset(deps=[photos, manifests], automation_condition=FOLLOW_BRONZE)
def silver() -> None: ...


@dg.asset(deps=[silver], automation_condition=FOLLOW_BRONZE)
def gold() -> None: ...


def test_the_models_follow_bronze_once_every_table_they_read_has_rows() -> None:
    instance = dg.DagsterInstance.ephemeral()
    everything = [photos, manifests, silver, gold]
    cursor = None

    def tick() -> set[str]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(everything, instance, cursor=cursor)
        cursor = result.cursor
        return {asset.key.to_user_string() for asset in (silver, gold) if result.get_num_requested(asset.key)}

    def materialize(asset: dg.AssetsDefinition, partition: str | None = None) -> None:
        assert dg.materialize(everything, selection=[asset], partition_key=partition, instance=instance).success

    MANIFESTS_MAY_FINISH.set()
    assert tick() == set()  # bronze is empty: nothing to build from
    materialize(photos, "curiosity")
    assert tick() == set()  # manifests still empty
    materialize(manifests, "curiosity")
    assert tick() == {"silver", "gold"}  # spirit's partitions, never fetched, do not hold the models back
    materialize(silver)
    materialize(gold)
    assert tick() == set()
    materialize(photos, "spirit")
    assert tick() == {"silver", "gold"}  # any bronze update rebuilds the whole tables
    materialize(silver)
    materialize(gold)
    assert tick() == set()

    materialize(photos, "spirit")
    MANIFESTS_MAY_FINISH.clear()
    manifests_run = threading.Thread(target=materialize, args=(manifests, "spirit"))
    manifests_run.start()
    try:
        deadline = time.monotonic() + 30
        while not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            assert time.monotonic() < deadline, "the manifests run did not start"
            time.sleep(0.05)
        assert tick() == set()  # photos updated, but bronze is still being written: wait for it
    finally:
        MANIFESTS_MAY_FINISH.set()
        manifests_run.join()
    assert tick() == {"silver", "gold"}  # one rebuild for both updates


def test_a_lake_without_bronze_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert bronze_sources(json.loads(ensure_dbt_manifest().read_text()), "mars") == BRONZE
    lake = tmp_path / "lake"
    with pytest.raises(MarsBronzeMissing, match=r"bronze/mars_manifests, bronze/mars_photos, bronze/mars_waypoints"):
        require_bronze(Lakehouse(root_uri=str(lake)), BRONZE)
    plant_bronze(lake)
    require_bronze(Lakehouse(root_uri=str(lake)), BRONZE)


def test_a_run_builds_the_models_and_replaces_their_delta_tables(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    lake = tmp_path / "lake"
    plant_bronze(lake)
    lakehouse = Lakehouse(root_uri=str(lake))
    assets = build_mars_dbt_assets(settings)
    resources = {"dbt": build_dbt_resource(settings), "lakehouse": lakehouse}
    instance = dg.DagsterInstance.ephemeral()
    with mock.patch.dict(os.environ):  # the run exports the dbt environment; keep the test process's
        first = dg.materialize([assets], resources=resources, instance=instance)
        second = dg.materialize([assets], resources=resources, instance=instance)
    assert first.success and second.success

    warehouse = duckdb.connect(str(tmp_path / "warehouse" / "dbt.duckdb"), read_only=True)
    warehouse.execute("SET TimeZone = 'UTC'")
    for key in MARS_KEYS:
        zone, name = key.split("/")
        table = DeltaTable(lakehouse.uri(TableRef(zone, name)))
        assert table.version() == 1  # created, then replaced whole
        published = duckdb.from_arrow(table.to_pyarrow_table()).order("all").fetchall()
        built = warehouse.sql(f"select * from {zone}.{name} order by all").fetchall()
        assert published == built and published, key
        events = second.asset_materializations_for_node("curated_mars")
        (event,) = [e for e in events if e.asset_key.to_user_string() == key]
        assert event.metadata["dagster/row_count"].value == len(built)
    warehouse.close()
    checks = second.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
