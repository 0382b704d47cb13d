"""A small bronze telemetry Delta table with known faults planted in it, for the dbt model tests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from satlake.telemetry.limits import SEVERITY_LEVEL, TelemetryLimits, alarm_level
from satlake.telemetry.tables import BRONZE_TELEMETRY_SCHEMA, MEASURES
from satlake.telemetry.validation import default_limits

DAY_1 = date(2024, 3, 1)
DAY_2 = date(2024, 3, 2)
SATELLITES = ("SAT-A", "SAT-B", "SAT-C")
CADENCE = timedelta(minutes=1)
READINGS_PER_DAY = 180  # 00:00 to 02:59 UTC, one a minute: three full hours
TOPIC = "satlake.telemetry"


@dataclass(frozen=True)
class PlantedFault:
    """A reading whose measure is overwritten with an anomalous value."""

    satellite: str
    day: date
    minute: int
    measure: str
    value: float


# The faults the models must find, and nothing else: a hot satellite (a warning alarm of the shipped limits);
# a sensor spike inside the sensor's limits (an outlier, no limit alarm) that is SAT-B's only anomaly of day 1;
# two sensor spikes for SAT-C on day 1 (2 of 180 readings, enough to degrade its day); a satellite far below
# its orbit (a critical alarm: under 160 km).
PLANTED_FAULTS = (
    PlantedFault("SAT-A", DAY_1, 90, "temp_c", 95.0),
    PlantedFault("SAT-B", DAY_1, 100, "sensor1", 0.95),
    PlantedFault("SAT-C", DAY_1, 135, "sensor2", 0.98),
    PlantedFault("SAT-C", DAY_1, 150, "sensor2", 0.02),
    PlantedFault("SAT-C", DAY_2, 45, "altitude_km", 150.0),
)
# SAT-B sends nothing from 01:00 to 01:59 on day 2.
SILENT_HOUR = ("SAT-B", DAY_2, 1)
# SAT-B's reading at 00:10 on day 1 arrives twice; the copy earliest in the log is (partition 0, offset 900).
DUPLICATED_READING = ("SAT-B", DAY_1, 10)


def at_minute(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + minute * CADENCE


def normal_reading(minute: int, rng: np.random.Generator) -> dict[str, Any]:
    """A healthy reading: slow temperature and altitude swings, a discharging battery, noisy sensors."""
    phase = 2 * math.pi * minute / 90
    return {
        "temp_c": 20.0 + 5.0 * math.sin(phase) + float(rng.normal(0, 0.3)),
        "battery_charge_pct": 90.0 - 0.1 * minute,
        "altitude_km": 550.0 + 2.0 * math.sin(phase + 1.0) + float(rng.normal(0, 0.05)),
        "sensor1": 0.5 + float(rng.normal(0, 0.02)),
        "sensor2": 0.5 + float(rng.normal(0, 0.02)),
        "sensor3": 0.5 + float(rng.normal(0, 0.02)),
    }


def bronze_row(
    satellite: str,
    event_time: datetime,
    measures: dict[str, float],
    *,
    partition: int,
    offset: int,
    batch_id: str = "batch-1",
    limits: TelemetryLimits | None = None,
) -> dict[str, Any]:
    """A bronze row with the alarm columns bronze would give it under ``limits`` (default: the shipped ones)."""
    limits = limits or default_limits()
    alarms = {
        measure: alarm_level(parameter, measures[measure])
        for measure, parameter in zip(MEASURES, limits.for_satellite(satellite), strict=True)
    }
    levels = [severity for severity, _ in alarms.values() if severity is not None]
    return {
        "satellite_name": satellite,
        "timestamp_ns": int(event_time.timestamp()) * 1_000_000_000,
        "event_time": event_time,
        "event_date": event_time.date(),
        **measures,
        "topic": TOPIC,
        "partition": partition,
        "offset": offset,
        "batch_id": batch_id,
        "received_at": event_time + timedelta(seconds=2),
        **{f"{m}_alarm": alarms[m][0] for m in MEASURES},
        **{f"{m}_alarm_limit": alarms[m][1] for m in MEASURES},
        "alarm_severity": max(levels, key=SEVERITY_LEVEL.__getitem__) if levels else None,
        "limits_version": limits.version,
    }


def planted_bronze_rows(limits: TelemetryLimits | None = None) -> list[dict[str, Any]]:
    """Three satellites over two days, with PLANTED_FAULTS, SILENT_HOUR and DUPLICATED_READING."""
    rng = np.random.default_rng(20240301)
    faults = {(f.satellite, f.day, f.minute): f for f in PLANTED_FAULTS}
    rows: list[dict[str, Any]] = []
    offsets = dict.fromkeys(range(len(SATELLITES)), 0)
    for day in (DAY_1, DAY_2):
        for partition, satellite in enumerate(SATELLITES):
            for minute in range(READINGS_PER_DAY):
                measures = normal_reading(minute, rng)
                if (satellite, day, minute // 60) == SILENT_HOUR:
                    continue
                fault = faults.get((satellite, day, minute))
                if fault is not None:
                    measures[fault.measure] = fault.value
                offsets[partition] += 1
                row = bronze_row(
                    satellite,
                    at_minute(day, minute),
                    measures,
                    partition=partition,
                    offset=offsets[partition],
                    limits=limits,
                )
                rows.append(row)
                if (satellite, day, minute) == DUPLICATED_READING:
                    rows.append({**row, "partition": 0, "offset": 900, "batch_id": "batch-2"})
    return rows


def write_bronze(
    lake_uri: Path, rows: list[dict[str, Any]], mode: str = "append", predicate: str | None = None
) -> None:
    """Append ``rows`` to bronze, or with ``predicate`` replace the rows it matches by them."""
    table = pa.Table.from_pylist(rows, schema=BRONZE_TELEMETRY_SCHEMA)
    write_deltalake(lake_uri / "bronze" / "telemetry", table, partition_by=["event_date"],
                    mode="overwrite" if predicate else mode, predicate=predicate)  # fmt: skip
