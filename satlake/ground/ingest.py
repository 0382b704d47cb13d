"""Exactly-once ingestion of a mission's topic into ``raw/packets``: every record the collectors published, the
packet bytes exactly as received, with the station and ground time from the envelope. The next offset of each
topic partition is committed in the same Delta commit as the rows (as the telemetry path does), so a run that
dies half way and runs again writes nothing twice and skips nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from satlake.ground.envelope import EnvelopeError, Kind, unwrap
from satlake.ground.registry import MissionRecord
from satlake.ground.tables import NOT_AN_ENVELOPE, PACKET, RAW_PACKETS, RAW_PACKETS_SCHEMA, REJECT
from satlake.resources.event_log import EventLog, RecordColumns
from satlake.resources.lakehouse import Lakehouse
from satlake.telemetry.ingest import check_contiguous

INGEST_BATCH_SIZE = 50_000
READ_WAIT_S = 5.0


def raw_app_id(topic: str, partition: int) -> str:
    """The application transaction of ``raw/packets`` whose version is the next offset to read."""
    return f"satlake.raw_packets/{topic}/{partition}"


def raw_positions(lakehouse: Lakehouse, topic: str, partitions: list[int]) -> dict[int, int]:
    app_ids = {partition: raw_app_id(topic, partition) for partition in partitions}
    versions = lakehouse.transaction_versions(RAW_PACKETS, list(app_ids.values())) if app_ids else {}
    return {partition: versions.get(app_id) or 0 for partition, app_id in app_ids.items()}


def pending_packets(event_log: EventLog, lakehouse: Lakehouse, topic: str) -> int:
    """Records in the mission's topic not yet in ``raw/packets`` (reads only offsets)."""
    end = event_log.end_offsets(topic)
    done = raw_positions(lakehouse, topic, list(end))
    return sum(end[p] - done[p] for p in end)


def _apid(packet: bytes) -> int | None:
    return ((packet[0] & 0x07) << 8 | packet[1]) if len(packet) >= 6 and packet[0] >> 5 == 0 else None


def raw_packet_rows(mission: str, records: RecordColumns, batch_id: str, received_at: datetime) -> pa.Table:
    """``raw/packets`` rows for records of ``mission``'s topic; a record that is no envelope is kept as it came."""
    columns: dict[str, list] = {name: [] for name in ("kind", "station", "ground_time", "apid", "reason", "packet")}
    for value in records.value.to_pylist():
        try:
            envelope = unwrap(value)
        except EnvelopeError as error:
            row = (NOT_AN_ENVELOPE, None, None, None, str(error), value)
        else:
            is_packet = envelope.kind == Kind.PACKET
            ground_time = datetime.fromtimestamp(envelope.received_ns / 1e9, UTC)
            apid = _apid(envelope.payload) if is_packet else None
            row = (PACKET if is_packet else REJECT, envelope.station, ground_time, apid, envelope.reason or None,
                   envelope.payload)  # fmt: skip
        for name, item in zip(columns, row, strict=True):
            columns[name].append(item)
    count = len(records)
    return pa.table(
        {
            "mission": pa.repeat(pa.scalar(mission), count),
            "topic": pa.repeat(pa.scalar(records.topic), count),
            "partition": pa.array(records.partition, pa.int32()),
            "offset": pa.array(records.offset, pa.int64()),
            "broker_timestamp": pa.array(records.timestamp_ms * 1000, pa.timestamp("us", tz="UTC")),
            **{name: pa.array(values, RAW_PACKETS_SCHEMA.field(name).type) for name, values in columns.items()},
            "receive_date": pa.repeat(pa.scalar(received_at.date(), pa.date32()), count),
            "batch_id": pa.repeat(pa.scalar(batch_id), count),
            "received_at": pa.repeat(pa.scalar(received_at, pa.timestamp("us", tz="UTC")), count),
        },
        schema=RAW_PACKETS_SCHEMA,
    )


@dataclass
class RawIngestReport:
    records: int = 0
    batches: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)


def ingest_packets(
    event_log: EventLog,
    lakehouse: Lakehouse,
    mission: MissionRecord,
    *,
    batch_size: int = INGEST_BATCH_SIZE,
    progress: Callable[[str], None] | None = None,
) -> RawIngestReport:
    """Commit every record of the mission's topic not yet in ``raw/packets``, batch by batch."""
    report = RawIngestReport()
    topic = mission.topic
    partitions = event_log.partitions(topic)
    if not partitions:
        return report
    writer = lakehouse.exactly_once_writer(RAW_PACKETS)
    end = event_log.end_offsets(topic)
    while True:
        app_ids = {p: raw_app_id(topic, p) for p in partitions}
        versions = writer.transaction_versions(list(app_ids.values()))
        start = {p: versions[app_ids[p]] or 0 for p in partitions}
        if all(start[p] >= end.get(p, 0) for p in partitions):
            break
        records = event_log.read_columns(topic, start, batch_size, timeout_s=event_log.poll_wait(READ_WAIT_S))
        records = records.before(end)  # what arrives during the run waits for the next one
        if not len(records):
            break
        following = check_contiguous(records, start)
        now = datetime.now(UTC)
        batch_id = uuid.uuid4().hex
        rows = raw_packet_rows(mission.name, records, batch_id, now)
        version = writer.append(
            rows,
            partition_by=["mission", "receive_date"],
            app_transactions={raw_app_id(topic, p): o for p, o in following.items()},
            commit_metadata={"satlake.batch_id": batch_id, "satlake.mission": mission.name},
        )
        report.records += rows.num_rows
        report.batches += 1
        for kind in rows.column("kind").to_pylist():
            report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
        report.end_offsets.update(following)
        if progress:
            progress(f"batch {batch_id[:8]}: {rows.num_rows} records of {topic} up to {following}, delta v{version}")
    return report
