"""Fixtures of the serving tests: lake rows to copy (catalog items, forest-change polygons, daily health) and
a private PostgreSQL + PostGIS cluster, started with the stack's own initdb and postmaster command
(satlake.stack.postgres) in a temporary directory on a free port, stopped and removed afterwards."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import shapely

from satlake.catalog.items import build_stac_item
from satlake.catalog.table import catalog_rows
from satlake.resources.postgis import PostgisServing
from satlake.scenes.tables import GOLD_FOREST_CHANGE_SCHEMA
from satlake.stack.isolated import free_port_pair
from satlake.stack.postgres import as_server_user, initialize_cluster, postgres_bindir, postgres_command
from tests.unit.catalog.catalog_scenes import antimeridian_scene, earth_utm_scene, mars_scene, polar_scene, scene_assets

STARTUP_TIMEOUT_S = 60.0
USER = "satlake"


def _wait_for_server(serving: PostgisServing, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited while starting:\n{log.read_text()[-2000:]}")
        try:
            with psycopg.connect(replace(serving, database="postgres").conninfo):
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"postgres did not accept connections within {STARTUP_TIMEOUT_S:.0f}s")


@contextmanager
def private_postgis() -> Iterator[PostgisServing]:
    """A running cluster with a ``satlake`` database that has PostGIS; skips when the binaries are missing."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL with PostGIS is not installed (`python3 -m satlake.stack install --servers postgres`)")
    home = Path(tempfile.mkdtemp(prefix="satlake-serving-pg-"))
    password = secrets.token_urlsafe(16)
    log = home / "postgres.log"
    server: subprocess.Popen | None = None
    try:
        initialize_cluster(bindir, home / "data", USER, password)
        port = free_port_pair(set())
        with log.open("wb") as output:
            server = subprocess.Popen(
                as_server_user(postgres_command(bindir, home / "data", "127.0.0.1", port)),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        serving = PostgisServing(host="127.0.0.1", port=port, user=USER, database="satlake", password=password)
        _wait_for_server(serving, server, log)
        with psycopg.connect(replace(serving, database="postgres").conninfo, autocommit=True) as admin:
            admin.execute("CREATE DATABASE satlake")
        with psycopg.connect(serving.conninfo, autocommit=True) as connection:
            connection.execute("CREATE EXTENSION postgis")
        yield serving
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)  # fast shutdown
            server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def catalog_table() -> pa.Table:
    scenes = [earth_utm_scene(), antimeridian_scene(), polar_scene(), mars_scene()]
    return catalog_rows([build_stac_item(meta, scene_assets(meta, "/data/satlake")) for meta in scenes])


def polygons_table(scene_id: str, boxes: list[shapely.Geometry]) -> pa.Table:
    rows = [
        {"scene_id": scene_id, "before_scene_id": "before_1", "collection": "satlake-sim", "tile": "EPSG:32633",
         "polygon_index": index, "before_date": date(2024, 5, 2), "after_date": date(2024, 6, 11),
         "area_ha": 12.5 + index, "mean_ndvi_drop": 0.4, "pixel_count": 139, "crs_epsg": 32633,
         "geometry_wkb": shapely.to_wkb(polygon), "geometry_lonlat_wkb": shapely.to_wkb(polygon)}
        for index, polygon in enumerate(boxes)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=GOLD_FOREST_CHANGE_SCHEMA)


def health_table(day: date, statuses: dict[str, str]) -> pa.Table:
    reading_at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    rows = [
        {"event_date": day, "satellite_name": name, "health_status": status, "status_reasons": None,
         "reading_count": 1440, "expected_reading_count": 1440, "first_reading_at": reading_at,
         "last_reading_at": reading_at, "coverage_ratio": 1.0, "median_interval_s": 60.0, "battery_min_pct": 71.0,
         "battery_avg_pct": 80.0, "battery_max_pct": 90.0, "max_depth_of_discharge_pct": 29.0, "temp_min_c": -3.0,
         "temp_max_c": 21.0, "temp_range_c": 24.0, "altitude_avg_km": 550.0, "altitude_drift_km": 0.1,
         "outlier_share": 0.0, "anomaly_count": 0, "range_violation_count": 0, "statistical_outlier_count": 0,
         "watch_alarm_count": 0, "warning_alarm_count": 0, "distress_alarm_count": 0,
         "critical_alarm_count": 1 if status == "critical" else 0, "severe_alarm_count": 0}
        for name, status in statuses.items()
    ]  # fmt: skip
    return pa.Table.from_pylist(rows)
