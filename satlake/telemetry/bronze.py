"""Decoding and validating one day of raw telemetry events into bronze rows and quarantined rejects.

Every raw event ends up in exactly one of the two outputs, so ``raw = bronze + rejects`` holds per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from satlake.telemetry.codec import EventDecodeError, decode_event_fields
from satlake.telemetry.ingest import MAX_CLOCK_SKEW_NS
from satlake.telemetry.tables import BRONZE_TELEMETRY_REJECTS_SCHEMA, BRONZE_TELEMETRY_SCHEMA, MEASURES
from satlake.telemetry.validation import Rejection, reject_reason_for_values, rejection_from_decode_error

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
    topics = raw.column("topic").to_pylist()
    partitions = raw.column("partition").to_pylist()
    offsets = raw.column("offset").to_pylist()
    payloads = raw.column("payload").to_pylist()
    received_ns = pc.cast(raw.column("received_at"), pa.int64()).to_pylist()  # microseconds since the epoch

    good_rows: list[int] = []
    good_fields: list[tuple] = []
    bad_rows: list[int] = []
    bad_details: list[tuple[str, str, str | None, int | None]] = []
    first_seen: dict[tuple[str, int], int] = {}
    for i, payload in enumerate(payloads):
        try:
            fields = decode_event_fields(payload)
        except EventDecodeError as error:
            rejection = rejection_from_decode_error(error)
            bad_rows.append(i)
            bad_details.append((rejection.code, rejection.reason, None, None))
            continue
        name, timestamp_ns = fields[0], fields[1]
        rejection = reject_reason_for_values(
            name, timestamp_ns, fields[2:], now_ns=received_ns[i] * 1000, max_clock_skew_ns=MAX_CLOCK_SKEW_NS
        )
        if rejection is None and (name, timestamp_ns) in first_seen:
            kept = first_seen[(name, timestamp_ns)]
            rejection = Rejection(
                DUPLICATE_EVENT,
                f"duplicate of the event at {topics[kept]}[{partitions[kept]}]@{offsets[kept]} "
                f"(same satellite {name!r} and timestamp_ns {timestamp_ns})",
            )
        if rejection is not None:
            bad_rows.append(i)
            bad_details.append((rejection.code, rejection.reason, name, timestamp_ns if timestamp_ns < 2**63 else None))
            continue
        first_seen[(name, timestamp_ns)] = i
        good_rows.append(i)
        good_fields.append(fields)

    return BronzePartition(
        rows=_bronze_rows(raw, good_rows, good_fields), rejects=_reject_rows(raw, bad_rows, bad_details)
    )


def _bronze_rows(raw: pa.Table, rows: list[int], fields: list[tuple]) -> pa.Table:
    source = raw.take(pa.array(rows, pa.int64()))
    columns = list(zip(*fields, strict=True)) if fields else [[] for _ in range(2 + len(MEASURES))]
    timestamp_ns = pa.array(columns[1], pa.int64())
    # Microsecond event_time from the exact nanosecond stamp (no float rounding).
    event_time = pc.cast(pc.divide(timestamp_ns, pa.scalar(1000, pa.int64())), pa.timestamp("us", tz="UTC"))
    data = {
        "satellite_name": pa.array(columns[0], pa.string()),
        "timestamp_ns": timestamp_ns,
        "event_time": event_time,
        "event_date": source.column("event_date"),
        **{measure: pa.array(columns[2 + j], pa.float64()) for j, measure in enumerate(MEASURES)},
        **{c: source.column(c) for c in ("topic", "partition", "offset", "batch_id", "received_at")},
    }
    return pa.table(data, schema=BRONZE_TELEMETRY_SCHEMA)


def _reject_rows(raw: pa.Table, rows: list[int], details: list[tuple[str, str, str | None, int | None]]) -> pa.Table:
    source = raw.take(pa.array(rows, pa.int64()))
    codes, reasons, names, stamps = (list(c) for c in zip(*details, strict=True)) if details else ([], [], [], [])
    data = {
        **{c: source.column(c) for c in ("topic", "partition", "offset", "payload")},
        "reason_code": pa.array(codes, pa.string()),
        "reason": pa.array(reasons, pa.string()),
        "satellite_name": pa.array(names, pa.string()),
        "timestamp_ns": pa.array(stamps, pa.int64()),
        **{c: source.column(c) for c in ("event_date", "batch_id", "received_at")},
    }
    return pa.table(data, schema=BRONZE_TELEMETRY_REJECTS_SCHEMA)
