"""Telemetry from a real producer's files, as a user lands it: CSVs shaped like the original Kafka-Spark-Delta
example's sample generator are replayed and run; every reading lands, alarms are where the limits file says,
and a mission's own limits file re-judges the days when they are rebuilt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.limits import TelemetryLimits, alarm_level
from satlake.telemetry.limits_file import DEFAULT_LIMITS_PATH, load_limits
from satlake.telemetry.tables import (
    BRONZE_TELEMETRY,
    BRONZE_TELEMETRY_REJECTS,
    GOLD_TELEMETRY_ANOMALIES,
    GOLD_TELEMETRY_DAILY_HEALTH,
    MEASURES,
    RAW_TELEMETRY_EVENTS,
    SILVER_TELEMETRY_CLEAN,
)

SATELLITES = 20
ROWS = 500
# The generator's ranges: every column is min-max scaled, so each file holds both ends exactly.
GENERATOR_RANGES = {
    "temp_c": (-100.0, 120.0),
    "battery_charge_pct": (0.0, 100.0),
    "altitude": (160.0, 2000.0),
    "sensor1": (-1.0, 1.0),
    "sensor2": (-1.0, 1.0),
    "sensor3": (-1.0, 1.0),
}
# A mission's limits: the shipped ones, with a narrower temperature band for the sat1x satellites.
MISSION_LIMITS = (
    DEFAULT_LIMITS_PATH.read_text().split("\n# Overrides")[0]
    + """
satellites:
  - match: "sat1*"
    parameters:
      temp_c:
        warning: {min: -30, max: 30}
        critical: {min: -50, max: 50}
"""
)


def write_generator_csvs(directory: Path, seed: int = 42) -> None:
    """sat0..sat19, ROWS readings each, every column scaled to exactly its generator range."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for index in range(SATELLITES):
        columns = []
        for low, high in GENERATOR_RANGES.values():
            raw = rng.random(ROWS)
            columns.append(low + (raw - raw.min()) / (raw.max() - raw.min()) * (high - low))
        rows = zip(*columns, strict=True)
        lines = [",".join(GENERATOR_RANGES)] + [",".join(repr(float(v)) for v in row) for row in rows]
        (directory / f"sat{index}.csv").write_text("\n".join(lines) + "\n")


def satlake(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SATLAKE_ROOT": str(root), "SATLAKE_MODE": "embedded", **env}
    return subprocess.run(
        [sys.executable, "-m", "satlake", *args], env=environment, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip


def assert_alarms_follow(rows: pa.Table, limits: TelemetryLimits) -> None:
    """Every measure's alarm column is what the limits say of its value, satellite by satellite."""
    data = rows.to_pydict()
    for i, name in enumerate(data["satellite_name"]):
        for measure, parameter in zip(MEASURES, limits.for_satellite(name), strict=True):
            expected = alarm_level(parameter, data[measure][i])
            assert (data[f"{measure}_alarm"][i], data[f"{measure}_alarm_limit"][i]) == expected, (name, measure)
        assert data["limits_version"][i] == limits.version


@pytest.mark.e2e
def test_generator_csvs_land_whole_with_alarms_only_where_the_limits_say(tmp_path: Path) -> None:
    csv_dir, root = tmp_path / "csv", tmp_path / "root"
    write_generator_csvs(csv_dir)
    produced = satlake(root, "produce", "telemetry", "--from-csv", str(csv_dir))
    assert produced.returncode == 0, produced.stderr
    assert f"published {SATELLITES * ROWS:,} events" in produced.stdout
    run = satlake(root, "run")
    assert run.returncode == 0, run.stdout + run.stderr

    lake = Lakehouse(root_uri=str(root / "lake"))
    raw, bronze, rejects = (lake.read(t) for t in (RAW_TELEMETRY_EVENTS, BRONZE_TELEMETRY, BRONZE_TELEMETRY_REJECTS))
    assert raw is not None and bronze is not None and rejects is not None
    assert raw.num_rows == bronze.num_rows == SATELLITES * ROWS  # every event is a reading
    assert rejects.num_rows == 0
    assert set(bronze.column("satellite_name").to_pylist()) == {f"sat{i}" for i in range(SATELLITES)}
    for measure, (low, high) in zip(MEASURES, GENERATOR_RANGES.values(), strict=True):
        values = bronze.column(measure).to_numpy()
        assert (values.min(), values.max()) == pytest.approx((low, high))  # the range ends landed too
    shipped = load_limits()
    assert_alarms_follow(bronze, shipped)
    severities = set(bronze.column("alarm_severity").to_pylist())
    assert severities == {None, "warning"}  # the generator's ranges are inside every critical band

    clean = lake.read(SILVER_TELEMETRY_CLEAN)
    assert clean is not None and clean.num_rows == SATELLITES * ROWS
    assert clean.column("alarm_severity").null_count == bronze.column("alarm_severity").null_count

    # The mission's own limits: sat1x satellites get a narrower critical temperature band. A rebuild
    # re-judges every day from the raw zone; nothing is rejected, the alarms move.
    limits_file = tmp_path / "mission.yaml"
    limits_file.write_text(MISSION_LIMITS)
    shown = satlake(root, "telemetry", "limits", str(limits_file), "--satellite", "sat12")
    assert shown.returncode == 0, shown.stderr
    assert "[-50..50]" in shown.stdout and "overrides sat1*" in shown.stdout
    rebuilt = satlake(root, "telemetry", "rebuild", SATLAKE_TELEMETRY_LIMITS=str(limits_file))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "readings kept      10,000" in rebuilt.stdout and "rejected                0" in rebuilt.stdout

    mission = load_limits(limits_file)
    bronze = lake.read(BRONZE_TELEMETRY)
    assert bronze is not None and bronze.num_rows == SATELLITES * ROWS
    assert_alarms_follow(bronze, mission)
    by_satellite = bronze.group_by("satellite_name").aggregate([("temp_c_alarm", "count")]).to_pylist()
    critical_temp = {
        row["satellite_name"]: row["temp_c_alarm_count"] for row in by_satellite
    }  # alarms of any severity on temp_c
    assert all(critical_temp[f"sat1{i}"] > critical_temp["sat2"] for i in range(10))
    health = lake.read(GOLD_TELEMETRY_DAILY_HEALTH)
    assert health is not None
    critical_days = {r["satellite_name"] for r in health.to_pylist() if r["critical_alarm_count"] > 0}
    assert critical_days == {"sat1", *(f"sat1{i}" for i in range(10))}
    anomalies = lake.read(GOLD_TELEMETRY_ANOMALIES, columns=["satellite_name", "kind", "severity"])
    assert anomalies is not None
    critical_rows = [r for r in anomalies.to_pylist() if r["severity"] == "critical"]
    assert critical_rows and {r["kind"] for r in critical_rows} == {"range_violation"}


@pytest.mark.e2e
def test_a_broken_limits_file_is_refused_naming_file_line_and_key(tmp_path: Path) -> None:
    broken = tmp_path / "mission.yaml"
    broken.write_text("mission: m\nparameters:\n  temp_c:\n    warning: {min: 90, max: 10}\n")
    result = satlake(tmp_path / "root", "telemetry", "limits", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{broken}:4: parameters.temp_c.warning: the range is empty" in result.stderr
