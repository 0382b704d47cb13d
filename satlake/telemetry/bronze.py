"""Decoding and validating one day of raw telemetry events into bronze rows and quarantined rejects.

Every raw event ends up in exactly one of the two outputs, so ``raw = bronze + rejects`` holds per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from satlake.telemetry.codec import EventDecodeError, decode_event
from satlake.telemetry.ingest import MAX_CLOCK_SKEW_NS
from satlake.telemetry.tables import BRONZE_TELEMETRY_REJECTS_SCHEMA, BRONZE_TELEMETRY_SCHEMA, MEASURES
from satlake.telemetry.validation import reject_reason

DUPLICATE_EVENT = "duplicate_event"


@dataclass(frozen=True)
class BronzePartition:
    rows: pa.Table
    rejects: pa.Table

    @property
    def reject_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for code in self.rejects.column("reason_code").to_pylist():
            counts[code] = counts.get(code, 0) + 1
        return dict(sorted(counts.items()))


def build_bronze_partition(raw: pa.Table) -> BronzePartition:
    """Decode, validate and de-duplicate raw events (one day's, or any set) into bronze rows and rejects.

    Validation judges each event against the moment it was received, not the moment this runs, so re-running
    a partition months later gives the same answer. Duplicates (same satellite and timestamp, e.g. a producer
    retry) keep the earliest log position; later copies are rejected with a pointer to the kept one.
    """
    raw = raw.sort_by([("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")])
    columns = {name: raw.column(name).to_pylist() for name in raw.column_names}
    good: dict[str, list] = {field.name: [] for field in BRONZE_TELEMETRY_SCHEMA}
    bad: dict[str, list] = {field.name: [] for field in BRONZE_TELEMETRY_REJECTS_SCHEMA}
    first_seen: dict[tuple[str, int], tuple[str, int, int]] = {}

    def reject(i: int, code: str, reason: str, name: str | None = None, ts: int | None = None) -> None:
        for column in ("topic", "partition", "offset", "payload", "event_date", "batch_id", "received_at"):
            bad[column].append(columns[column][i])
        bad["reason_code"].append(code)
        bad["reason"].append(reason)
        bad["satellite_name"].append(name)
        bad["timestamp_ns"].append(ts if ts is None or ts < 2**63 else None)

    for i, payload in enumerate(columns["payload"]):
        try:
            reading = decode_event(payload)
        except EventDecodeError as error:
            reject(i, error.reason_code, f"undecodable event: {error.detail}")
            continue
        received_at: datetime = columns["received_at"][i]
        rejection = reject_reason(
            reading, now_ns=int(received_at.timestamp() * 1e9), max_clock_skew_ns=MAX_CLOCK_SKEW_NS
        )
        if rejection is not None:
            reject(i, rejection.code, rejection.reason, reading.satellite_name, reading.timestamp_ns)
            continue
        key = (reading.satellite_name, reading.timestamp_ns)
        position = (columns["topic"][i], columns["partition"][i], columns["offset"][i])
        if key in first_seen:
            kept = first_seen[key]
            reject(
                i,
                DUPLICATE_EVENT,
                f"duplicate of the event at {kept[0]}[{kept[1]}]@{kept[2]} "
                f"(same satellite {reading.satellite_name!r} and timestamp_ns {reading.timestamp_ns})",
                reading.satellite_name,
                reading.timestamp_ns,
            )
            continue
        first_seen[key] = position
        good["satellite_name"].append(reading.satellite_name)
        good["timestamp_ns"].append(reading.timestamp_ns)
        good["event_time"].append(datetime.fromtimestamp(reading.timestamp_ns / 1e9, tz=UTC))
        good["event_date"].append(columns["event_date"][i])
        for measure in MEASURES:
            good[measure].append(getattr(reading, measure))
        for column in ("topic", "partition", "offset", "batch_id", "received_at"):
            good[column].append(columns[column][i])

    rows = pa.table(good, schema=BRONZE_TELEMETRY_SCHEMA)
    if rows.num_rows:
        # Microsecond event_time from the exact nanosecond stamp (float division loses sub-microsecond digits).
        micros = pc.divide(rows.column("timestamp_ns"), pa.scalar(1000, pa.int64()))
        event_time = pc.cast(micros, pa.timestamp("us", tz="UTC"))
        rows = rows.set_column(2, BRONZE_TELEMETRY_SCHEMA.field("event_time"), event_time)
    return BronzePartition(rows=rows, rejects=pa.table(bad, schema=BRONZE_TELEMETRY_REJECTS_SCHEMA))
