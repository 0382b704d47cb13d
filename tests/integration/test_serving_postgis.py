"""The PostGIS serving layer in stack mode: after the demo's scenes land in MinIO and run through the sensors
and automation a deployment uses, `psql` on the serving database finds the catalog footprints and the planted
forest-change polygon with ST_Intersects, and Mars stays off Earth."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from fastapi.testclient import TestClient

from satlake.definitions import build_definitions
from satlake.instance_state import SensorStateStore
from satlake.resources.kafka_event_log import KafkaEventLog
from satlake.resources.postgis import PostgisServing
from satlake.runner import run_pending_work
from satlake.scenes.demo import land_demo_scenes
from satlake.scenes.sensors import SensorCursor, object_events_sensor
from satlake.serving.features import features_app
from satlake.settings import Settings
from satlake.stack import stack_status, stack_up
from satlake.stack.isolated import isolated_stack_environment
from satlake.stack.lifecycle import stop_server

pytestmark = pytest.mark.integration
DEMO_EARTH_SCENES = 8  # 2 tiles x 4 dates; the Landsat fixture adds one where shared/ has it


def psql(settings: Settings, query: str) -> list[list[str]]:
    """Rows of ``query`` as the psql command line prints them unaligned (``|`` between columns)."""
    executable = shutil.which("psql")
    if executable is None:
        pytest.skip("the psql client is not installed (Debian package postgresql-client)")
    assert settings.postgres_password, "the stack fixture's settings carry the generated password"
    completed = subprocess.run(
        [executable, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", settings.postgres_host,
         "-p", str(settings.postgres_port), "-U", settings.postgres_user, "-d", settings.postgres_database,
         "-c", query],
        env={**os.environ, "PGPASSWORD": settings.postgres_password},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return [line.split("|") for line in completed.stdout.splitlines()]


def _copied(settings: Settings) -> tuple[int, int]:
    """(footprints, forest-change polygons) in the serving tables so far; (0, 0) before they exist."""
    try:
        with PostgisServing.from_settings(settings).connect() as connection:
            counts = [
                connection.execute(f"SELECT count(*) FROM serving.{table}").fetchone()
                for table in ("catalog_footprints", "forest_change")
            ]
    except psycopg.errors.UndefinedTable:
        return 0, 0
    return counts[0][0], counts[1][0]  # type: ignore[index]


def test_after_the_scene_demo_psql_finds_footprints_and_forest_change(stack: Settings, tmp_path: Path) -> None:
    settings = stack.with_overrides(root=tmp_path)
    # Start the scene sensor at the topic's end, so only this test's demo scenes are considered.
    log = KafkaEventLog(settings.kafka_bootstrap)
    start = SensorCursor(offsets=log.end_offsets(settings.object_events_topic)).to_json()
    log.close()
    land_demo_scenes(settings, tmp_path / "demo" / "scenes.json", say=print)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        SensorStateStore(instance).save_cursor(object_events_sensor, start)
        deadline = time.monotonic() + 300
        # MinIO announces the uploads asynchronously: run sensors and automation until the copies are there.
        while _copied(settings)[0] < DEMO_EARTH_SCENES or _copied(settings)[1] == 0:
            assert time.monotonic() < deadline, f"serving tables after 300 s: {_copied(settings)}"
            with partition_loading_context(dynamic_partitions_store=instance):
                outcomes = run_pending_work(defs, instance)
            assert all(o.success for o in outcomes), [o.description for o in outcomes if not o.success]
            time.sleep(2)

    footprints = psql(
        settings,
        "SELECT id, collection, body FROM serving.catalog_footprints "
        "WHERE ST_Intersects(geometry, ST_MakeEnvelope(-180, -90, 180, 90, 4326)) ORDER BY id",
    )
    sim = [row for row in footprints if row[1] == "satlake-sim"]
    assert len(sim) >= 8 and {row[2] for row in footprints} == {"earth"}
    assert not [row for row in footprints if row[1] == "satlake-sim-mars"]
    # The planted clearing: a forest-change polygon inside its scene's footprint, found by ST_Intersects.
    change = psql(
        settings,
        "SELECT f.scene_id, round(f.area_ha::numeric, 2), c.collection FROM serving.forest_change f "
        "JOIN serving.catalog_footprints c ON ST_Intersects(f.geometry, c.geometry) AND c.id = f.scene_id "
        "ORDER BY f.area_ha DESC",
    )
    assert change, "no forest-change polygon intersects its scene's footprint"
    assert change[0][2] == "satlake-sim" and float(change[0][1]) > 0
    centre = psql(
        settings,
        "SELECT ST_X(ST_PointOnSurface(geometry)), ST_Y(ST_PointOnSurface(geometry)) FROM serving.forest_change "
        "ORDER BY area_ha DESC LIMIT 1",
    )[0]
    point = f"ST_SetSRID(ST_MakePoint({float(centre[0])}, {float(centre[1])}), 4326)"
    hit = psql(settings, f"SELECT scene_id FROM serving.forest_change WHERE ST_Intersects(geometry, {point})")
    assert [row[0] for row in hit] == [change[0][0]]
    indexes = psql(settings, "SELECT indexname FROM pg_indexes WHERE schemaname = 'serving' AND indexdef ~ 'gist'")
    assert sorted(row[0] for row in indexes) == ["catalog_footprints_geometry_gist", "forest_change_geometry_gist"]
    # The same polygon as OGC API Features, as QGIS adds it by URL from `satlake serve`'s /features.
    with TestClient(features_app(settings)) as client:
        served = client.get("/collections/serving.forest_change/items", params={"f": "geojson"}).json()
    assert change[0][0] in {feature["properties"]["scene_id"] for feature in served["features"]}


def test_postgres_server_keeps_its_data_across_a_restart_and_a_second_up_only_checks_it(tmp_path: Path) -> None:
    environment = isolated_stack_environment(tmp_path)
    settings = Settings.from_env(environment)
    messages: list[str] = []
    try:
        stack_up(settings, servers=["postgres"], progress=messages.append)
        settings = Settings.from_env(environment)  # with the password the first `up` generated
        assert settings.postgres_password and not any(settings.postgres_password in m for m in messages)
        psql(settings, "CREATE TABLE kept AS SELECT ST_GeomFromText('POINT(15 45)', 4326) AS geometry")
        pid = stop_server(settings, "postgres", progress=messages.append)
        assert pid is not None and not Path(f"/proc/{pid}").exists()
        stack_up(settings, servers=["postgres"], progress=messages.append)
        again: list[str] = []
        stack_up(settings, servers=["postgres"], progress=again.append)
        assert any(message.startswith("postgres: already running") for message in again)
        [status] = [status for status in stack_status(settings) if status.name == "postgres"]
        assert status.healthy and "PostGIS" in status.detail
        assert psql(settings, "SELECT ST_AsText(geometry) FROM kept") == [["POINT(15 45)"]]
    finally:
        stop_server(settings, "postgres", progress=messages.append)
