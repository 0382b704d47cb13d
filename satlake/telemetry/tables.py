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
    ]
)
