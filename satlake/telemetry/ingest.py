"""Exactly-once ingestion of telemetry events from the event log (embedded log or Kafka) into
``raw/telemetry_events``: the consumed offsets are committed in the same Delta commit as the rows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa

from satlake.resources.event_log import EventLog, LogRecord
from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.codec import EventDecodeError, decode_event, decode_event_columns
from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS, RAW_TELEMETRY_EVENTS_SCHEMA, UTC_MICROS, UTC_MILLIS

log = logging.getLogger(__name__)

NANOS_PER_DAY = 86_400 * 10**9
# Events stamped this far ahead of their arrival are still routed to their own day (clock skew on board).
MAX_CLOCK_SKEW_NS = 5 * 60 * 10**9


def offsets_app_id(topic: str, partition: int) -> str:
    """The Delta application-transaction id whose version is the next offset to read from a partition."""
    return f"satlake.ingest/{topic}/{partition}"


def committed_offsets(lakehouse: Lakehouse, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """Next offset to consume per partition, as recorded in the raw table (0 where nothing was consumed)."""
    app_ids = {partition: offsets_app_id(topic, partition) for partition in partitions}
    versions = lakehouse.transaction_versions(RAW_TELEMETRY_EVENTS, list(app_ids.values()))
    return {partition: versions[app_id] or 0 for partition, app_id in app_ids.items()}


def pending_event_counts(event_log: EventLog, lakehouse: Lakehouse, topic: str) -> dict[int, int]:
    """Events in the log not yet in the lakehouse, per partition. Cheap enough for every sensor tick: it
    reads only the log's end offsets and the raw table's transaction versions, never the events."""
    end = event_log.end_offsets(topic)
    done = committed_offsets(lakehouse, topic, list(end))
    return {partition: end[partition] - done[partition] for partition in end}


def event_day_hint(payload: bytes, received_at_ns: int) -> date:
    """The UTC day an event belongs to: its own timestamp when readable and plausible, else its arrival day.

    Only used to route a row to a bronze partition; bronze decodes and validates again and explains rejects.
    """
    try:
        timestamp_ns = decode_event(payload).timestamp_ns
    except EventDecodeError:
        timestamp_ns = None
    if timestamp_ns is None or not 0 < timestamp_ns <= received_at_ns + MAX_CLOCK_SKEW_NS:
        timestamp_ns = received_at_ns
    return date.fromordinal(date(1970, 1, 1).toordinal() + timestamp_ns // NANOS_PER_DAY)


def event_day_hints(payloads: Sequence[bytes], received_at_ns: int) -> pa.Array:
    """``event_day_hint`` for a whole batch, as a date32 array: one columnar decode, no per-event objects."""
    decoded = decode_event_columns(payloads)
    latest = received_at_ns + MAX_CLOCK_SKEW_NS
    days = [received_at_ns // NANOS_PER_DAY] * len(payloads)
    for index, timestamp_ns in zip(decoded.source_index, decoded.timestamp_ns, strict=True):
        if 0 < timestamp_ns <= latest:
            days[index] = timestamp_ns // NANOS_PER_DAY
    return pa.array(days, pa.int32()).cast(pa.date32())


def raw_event_rows(records: Sequence[LogRecord], batch_id: str, received_at: datetime) -> pa.Table:
    """Arrow rows for ``raw/telemetry_events``: payloads exactly as received plus their log position."""
    received_at_ns = int(received_at.timestamp() * 1e9)
    receive_day = received_at.astimezone(UTC).date()
    return pa.table(
        {
            "topic": [r.topic for r in records],
            "partition": [r.partition for r in records],
            "offset": [r.offset for r in records],
            "broker_timestamp": pa.array([r.timestamp_ms for r in records], UTC_MILLIS).cast(UTC_MICROS),
            "key": [r.key for r in records],
            "payload": [r.value for r in records],
            "event_date": event_day_hints([r.value for r in records], received_at_ns),
            "receive_date": [receive_day] * len(records),
            "batch_id": [batch_id] * len(records),
            "received_at": [received_at] * len(records),
        },
        schema=RAW_TELEMETRY_EVENTS_SCHEMA,
    )


@dataclass
class IngestBatch:
    """One committed batch: how many events, from which offsets to which, and the days they belong to."""

    batch_id: str
    events: int
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    event_dates: list[date]
    delta_version: int


@dataclass
class IngestReport:
    batches: list[IngestBatch] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(batch.events for batch in self.batches)

    @property
    def event_dates(self) -> list[date]:
        return sorted({day for batch in self.batches for day in batch.event_dates})


def ingest_one_batch(
    event_log: EventLog,
    lakehouse: Lakehouse,
    topic: str,
    max_records: int,
    stop_at: dict[int, int] | None = None,
) -> IngestBatch | None:
    """Read up to ``max_records`` events after the committed offsets and commit them with the new offsets.

    Returns None when there is nothing new. Two ingestions racing on the same offsets cannot both commit:
    Delta rejects the second commit of the same application transaction (CommitFailedError).
    """
    start = committed_offsets(lakehouse, topic, event_log.partitions(topic))
    if stop_at is not None and all(o >= stop_at.get(p, 0) for p, o in start.items()):
        return None
    records = event_log.read(topic, start, max_records)
    if stop_at is not None:
        records = [r for r in records if r.offset < stop_at.get(r.partition, 0)]
    if not records:
        return None
    expected = dict(start)
    for record in records:
        if record.offset != expected[record.partition]:
            raise RuntimeError(
                f"{topic}[{record.partition}]: expected offset {expected[record.partition]}, got "
                f"{record.offset}: the log skipped or repeated records; refusing to commit a gap"
            )
        expected[record.partition] = record.offset + 1
    next_offsets = {p: o for p, o in expected.items() if o != start[p]}
    batch_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    rows = raw_event_rows(records, batch_id, datetime.now(UTC))
    version = lakehouse.append_exactly_once(
        RAW_TELEMETRY_EVENTS,
        rows,
        # By the day the event belongs to, so building a bronze day reads exactly one raw partition.
        partition_by=["event_date"],
        app_transactions={offsets_app_id(topic, p): o for p, o in next_offsets.items()},
        commit_metadata={"satlake.batch_id": batch_id, "satlake.events": str(len(records))},
    )
    event_dates = sorted(set(rows.column("event_date").to_pylist()))
    return IngestBatch(
        batch_id=batch_id,
        events=len(records),
        start_offsets={p: start[p] for p in next_offsets},
        end_offsets=next_offsets,
        event_dates=event_dates,
        delta_version=version,
    )


def ingest_until_caught_up(
    event_log: EventLog,
    lakehouse: Lakehouse,
    topic: str,
    batch_size: int = 50_000,
    max_batches: int | None = None,
    progress: Callable[[IngestBatch], None] | None = None,
) -> IngestReport:
    """Commit batches until the offsets seen at the start are all consumed (events arriving meanwhile wait
    for the next run, so a busy topic cannot keep one run going forever)."""
    started = time.perf_counter()
    stop_at = event_log.end_offsets(topic)
    report = IngestReport()
    while max_batches is None or len(report.batches) < max_batches:
        batch = ingest_one_batch(event_log, lakehouse, topic, batch_size, stop_at=stop_at)
        if batch is None:
            break
        report.batches.append(batch)
        log.info(
            "committed batch %s: %d events from %s, offsets %s -> %s (delta v%d)",
            batch.batch_id, batch.events, topic, batch.start_offsets, batch.end_offsets, batch.delta_version,
        )  # fmt: skip
        if progress is not None:
            progress(batch)
    report.seconds = time.perf_counter() - started
    return report
