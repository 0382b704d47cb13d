"""The Mars dbt models on small planted bronze Delta tables: dedup, counts, drives, the timeline, reruns, data
tests, the project's config scoping, and the Dagster assets that build them and publish them to Delta."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from satlake.mars.rovers import ROVERS
from satlake.mars.tables import MARS_PHOTOS_SCHEMA, MARS_WAYPOINTS_SCHEMA
from satlake.resources.dbt_project import DBT_PROJECT_DIR, ensure_dbt_manifest
from tests.unit.dbt.dbt_warehouse import DbtRunFailed, DbtWarehouse
from tests.unit.dbt.planted_mars import (
    FIRST_PHOTOS,
    SECOND_FETCH,
    SECOND_PHOTOS,
    photo,
    plant_bronze,
    waypoint,
    write_table,
)

MARS_TABLES = (
    "silver.mars_photos",
    "gold.mars_photos_per_sol",
    "gold.mars_drive_per_sol",
    "gold.mars_mission_timeline",
)
SILVER_COLUMNS = ("id", "rover_name", "sol", "earth_date", "camera_name", "camera_full_name", "img_src", "fetched_at")


def new_mars_warehouse(root: Path) -> DbtWarehouse:
    root.mkdir(parents=True, exist_ok=True)
    plant_bronze(root / "lake")
    return DbtWarehouse(lake_uri=root / "lake", duckdb_path=root / "warehouse.duckdb", work_dir=root / "dbt",
                        select="tag:mars")  # fmt: skip


def build(warehouse: DbtWarehouse) -> None:
    warehouse.run_dbt("build", None, None)  # whole tables: no window vars


@pytest.fixture(scope="module")
def mars_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DbtWarehouse:
    """The planted bronze Mars tables, built once; read-only for the tests using it."""
    warehouse = new_mars_warehouse(tmp_path_factory.mktemp("mars"))
    build(warehouse)
    return warehouse


def snapshot(warehouse: DbtWarehouse) -> dict[str, list[dict[str, Any]]]:
    return {table: warehouse.rows(table) for table in MARS_TABLES}


def test_silver_keeps_each_photo_once_from_its_latest_fetch(mars_warehouse: DbtWarehouse) -> None:
    latest = {p["id"]: p for p in FIRST_PHOTOS} | {p["id"]: p for p in SECOND_PHOTOS}  # fetch 2 was committed first
    expected = [{column: latest[i][column] for column in SILVER_COLUMNS} for i in sorted(latest)]
    silver = mars_warehouse.rows("silver.mars_photos")
    assert silver == expected
    assert [r["id"] for r in silver] == [101, 102, 103, 104, 105, 106, 107, 201, 202, 203, 204, 301, 302]
    by_id = {r["id"]: r for r in silver}
    assert by_id[102]["img_src"] == "https://mars.nasa.gov/raw/curiosity/01000/102.jpg"
    assert by_id[103]["camera_full_name"] == "Navigation Camera"
    assert by_id[204]["fetched_at"] == SECOND_FETCH


def test_photos_per_sol_counts_each_photo_once(mars_warehouse: DbtWarehouse) -> None:
    counts = [
        (r["rover_name"], r["camera_name"], r["sol"], r["earth_date"], r["photos"])
        for r in mars_warehouse.rows("gold.mars_photos_per_sol")
    ]
    assert counts == [
        ("curiosity", "CHEMCAM", 1000, date(2015, 5, 30), 1),
        ("curiosity", "FHAZ", 1000, date(2015, 5, 30), 2),
        ("curiosity", "FHAZ", 1003, date(2015, 6, 2), 1),
        ("curiosity", "MAST", 1001, date(2015, 5, 31), 2),
        ("curiosity", "NAVCAM", 1000, date(2015, 5, 30), 1),
        ("perseverance", "FRONT_HAZCAM_LEFT_A", 100, date(2021, 5, 30), 1),
        ("perseverance", "NAVCAM_LEFT", 100, date(2021, 5, 30), 2),
        ("perseverance", "NAVCAM_LEFT", 101, date(2021, 5, 31), 1),
        ("spirit", "NAVCAM", 50, date(2004, 2, 23), 1),
        ("spirit", "PANCAM", 50, date(2004, 2, 23), 1),
    ]


def test_drive_per_sol_sums_each_waypoint_once_from_the_latest_traverse(mars_warehouse: DbtWarehouse) -> None:
    columns = ("rover_name", "sol", "waypoints", "start_site", "start_drive", "end_site", "end_drive",
               "geodesic_m", "published_m", "total_m")  # fmt: skip
    drives = [tuple(r[c] for c in columns) for r in mars_warehouse.rows("gold.mars_drive_per_sol")]
    assert drives == [
        ("curiosity", 999, 1, 50, 0, 50, 0, None, 0.0, 0.0),  # the traverse's first waypoint: no segment
        ("curiosity", 1000, 3, 50, 100, 51, 0, 31.25, 31.0, 31.0),  # listed out of order in the file
        ("curiosity", 1002, 1, 51, 300, 51, 300, 40.0, 42.0, 73.0),  # the second fetch's revised dist_m
        ("curiosity", 1003, 1, 51, 500, 51, 500, 5.0, 5.0, 78.0),  # only in the second fetch
        ("perseverance", 99, 1, 3, 0, 3, 0, None, 0.0, 0.0),
        ("perseverance", 101, 2, 3, 40, 3, 80, 37.5, 37.0, 37.0),
    ]


def test_mission_timeline_has_every_sol_with_photos_or_a_drive(mars_warehouse: DbtWarehouse) -> None:
    columns = ("rover_name", "sol", "earth_date", "photos", "cameras", "driven_m", "cumulative_m", "manifest_photos")
    timeline = [tuple(r[c] for c in columns) for r in mars_warehouse.rows("gold.mars_mission_timeline")]
    assert timeline == [
        ("curiosity", 999, date(2015, 5, 29), 0, 0, 0.0, 0.0, 10),  # a drive; the date from the manifest
        ("curiosity", 1000, date(2015, 5, 30), 4, 3, 31.25, 31.25, 5),  # the later manifest's count
        ("curiosity", 1001, date(2015, 5, 31), 2, 1, 0.0, 31.25, 2),  # photos, no drive
        ("curiosity", 1002, None, 0, 0, 40.0, 71.25, None),  # a drive on a sol no manifest lists
        ("curiosity", 1003, date(2015, 6, 2), 1, 1, 5.0, 76.25, 1),
        ("perseverance", 99, date(2021, 5, 29), 0, 0, 0.0, 0.0, 4),
        ("perseverance", 100, date(2021, 5, 30), 3, 2, 0.0, 0.0, 3),
        ("perseverance", 101, date(2021, 5, 31), 1, 1, 37.5, 37.5, 1),
        ("spirit", 50, date(2004, 2, 23), 2, 2, None, None, 2),  # no traverse: distance unknown, not 0
    ]


def test_every_run_rebuilds_the_whole_tables(mars_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    warehouse = mars_warehouse.copy_to(tmp_path)
    before = snapshot(warehouse)
    build(warehouse)
    assert snapshot(warehouse) == before  # nothing appended twice

    later = SECOND_FETCH.replace(day=SECOND_FETCH.day + 1)
    write_table(warehouse.lake_uri, "mars_photos", [photo(108, "curiosity", 1001, "FHAZ", later)],
                MARS_PHOTOS_SCHEMA)  # fmt: skip
    write_table(warehouse.lake_uri, "mars_waypoints", [waypoint("curiosity", 1004, 52, 0, 2.5, 2.5, 80.5, later)],
                MARS_WAYPOINTS_SCHEMA)  # fmt: skip
    build(warehouse)

    assert len(warehouse.rows("silver.mars_photos")) == len(before["silver.mars_photos"]) + 1
    timeline = {(r["rover_name"], r["sol"]): r for r in warehouse.rows("gold.mars_mission_timeline")}
    assert (timeline[("curiosity", 1001)]["photos"], timeline[("curiosity", 1001)]["cameras"]) == (3, 2)
    assert (timeline[("curiosity", 1004)]["driven_m"], timeline[("curiosity", 1004)]["cumulative_m"]) == (2.5, 78.75)
    assert timeline[("curiosity", 1004)]["manifest_photos"] == 7
    unchanged = [r for r in warehouse.rows("gold.mars_mission_timeline") if r["rover_name"] != "curiosity"]
    assert unchanged == [r for r in before["gold.mars_mission_timeline"] if r["rover_name"] != "curiosity"]


def test_data_tests_catch_a_duplicate_photo(mars_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    warehouse = mars_warehouse.copy_to(tmp_path)
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute("insert into silver.mars_photos select * from silver.mars_photos where id = 101")
    with pytest.raises(DbtRunFailed, match=r"unique_mars_photos_id.*fail"):
        warehouse.run_dbt("test", None, None)


def test_data_tests_catch_an_unknown_rover(mars_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    warehouse = mars_warehouse.copy_to(tmp_path)
    with duckdb.connect(str(warehouse.duckdb_path)) as con:
        con.execute("update gold.mars_drive_per_sol set rover_name = 'Curiosity' where sol = 999")
    with pytest.raises(DbtRunFailed, match=r"accepted_values_mars_drive_per_sol_rover_name.*fail"):
        warehouse.run_dbt("test", None, None)


def test_the_mars_build_touches_no_telemetry_table(mars_warehouse: DbtWarehouse) -> None:
    with duckdb.connect(str(mars_warehouse.duckdb_path), read_only=True) as con:
        tables = con.sql("select table_schema || '.' || table_name from information_schema.tables order by 1")
        built = {name for (name,) in tables.fetchall() if not name.startswith("dbt_test__audit.")}
    # The models, and the views dbt-duckdb's delta plugin registers over the bronze tables they read.
    assert built == {*MARS_TABLES, "bronze.mars_photos", "bronze.mars_waypoints", "bronze.mars_manifests"}


def test_the_project_scopes_config_by_domain() -> None:
    manifest = json.loads(ensure_dbt_manifest().read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    mars = {name for name, node in models.items() if "mars" in node["tags"]}
    telemetry = {name for name, node in models.items() if "telemetry" in node["tags"]}
    assert {f"{models[m]['schema']}.{m}" for m in mars} == set(MARS_TABLES)
    assert telemetry == {"telemetry_clean", "telemetry_hourly", "telemetry_anomalies", "telemetry_daily_health"}
    assert {models[m]["config"]["materialized"] for m in mars} == {"table"}
    assert {models[m]["config"]["materialized"] for m in telemetry} == {"incremental"}
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    for test in tests:
        (model,) = (models[node.split(".")[-1]] for node in test["depends_on"]["nodes"] if node.startswith("model."))
        windowed = test["config"]["where"] is not None and "event_date between" in test["config"]["where"]
        assert windowed == ("telemetry" in model["tags"]), test["name"]
    assert any(t["name"] == "unique_mars_photos_id" for t in tests)


def test_accepted_rover_names_are_the_rovers_satlake_knows() -> None:
    accepted = []
    for schema_file in sorted((DBT_PROJECT_DIR / "models" / "mars").rglob("schema.yml")):
        for model in yaml.safe_load(schema_file.read_text())["models"]:
            for column in model["columns"]:
                for test in column.get("data_tests", []):
                    if isinstance(test, dict) and "accepted_values" in test and column["name"] == "rover_name":
                        accepted.append((model["name"], sorted(test["accepted_values"]["arguments"]["values"])))
    assert len(accepted) == 4
    assert all(values == sorted(ROVERS) for _, values in accepted), accepted
