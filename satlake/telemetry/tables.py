"""The telemetry tables: where they live in the lakehouse and the Arrow schema each one keeps."""

from __future__ import annotations

import pyarrow as pa

from satlake.resources.lakehouse import TableRef

RAW_TELEMETRY_EVENTS = TableRef("raw", "telemetry_events")
BRONZE_TELEMETRY = TableRef("bronze", "telemetry")
BRONZE_TELEMETRY_REJECTS = TableRef("bronze", "telemetry_rejects")
SILVER_TELEMETRY_CLEAN = TableRef("silver", "telemetry_clean")
GOLD_TELEMETRY_HOURLY = TableRef("gold", "telemetry_hourly")
GOLD_TELEMETRY_DAILY_HEALTH = TableRef("gold", "telemetry_daily_health")
GOLD_TELEMETRY_ANOMALIES = TableRef("gold", "telemetry_anomalies")

UTC_MILLIS = pa.timestamp("ms", tz="UTC")
UTC_MICROS = pa.timestamp("us", tz="UTC")

MEASURES = ("temp_c", "battery_charge_pct", "altitude_km", "sensor1", "sensor2", "sensor3")
# Per measure: the severity of its limit alarm (null when within limits) and the limit it crossed.
ALARM_COLUMNS = tuple(column for measure in MEASURES for column in (f"{measure}_alarm", f"{measure}_alarm_limit"))

# Payload bytes exactly as received, with their position in the log. ``event_date`` routes each row to its
# bronze partition: the event's own UTC day when its timestamp can be read, else the day it was received.
RAW_TELEMETRY_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("broker_timestamp", UTC_MICROS, nullable=False),  # Delta stores microseconds
        pa.field("key", pa.binary()),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("receive_date", pa.date32(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("received_at", UTC_MICROS, nullable=False),
    ]
)

BRONZE_TELEMETRY_SCHEMA = pa.schema(
    [
        pa.field("satellite_name", pa.string(), nullable=False),
        pa.field("timestamp_ns", pa.int64(), nullable=False),
        pa.field("event_time", UTC_MICROS, nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in MEASURES),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("received_at", UTC_MICROS, nullable=False),
        # Added by the limits contract; at the end, so tables written before it evolve by adding columns.
        *(pa.field(column, pa.string() if column.endswith("_alarm") else pa.float64()) for column in ALARM_COLUMNS),
        pa.field("alarm_severity", pa.string()),  # the worst of the reading's alarms
        pa.field("limits_version", pa.string()),  # TelemetryLimits.version of the limits that judged the row
    ]
)

BRONZE_TELEMETRY_REJECTS_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("satellite_name", pa.string()),
        pa.field("timestamp_ns", pa.int64()),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("received_at", UTC_MICROS, nullable=False),
        pa.field("limits_version", pa.string()),
    ]
)
