"""Requests read from a topic exactly once into two Delta tables: the accepted ones and the refused ones with
the reason.

Each tick reads the records after the offsets both tables have committed and validates each with the domain's
parser. Each table records the next offset per topic partition as a Delta application transaction in the same
commit as its rows, so a tick that dies half way and is run again writes nothing twice and skips nothing. A
request id accepted before is refused as a duplicate, so each request is served once. Acquisition and the Mars
source both read their requests this way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import pyarrow as pa

from satlake.resources.event_log import EventLog, LogRecord
from satlake.resources.lakehouse import Lakehouse, TableRef

MAX_RECORDS_PER_TICK = 1000
READ_WAIT_S = 5.0
_TS = pa.timestamp("us", tz="UTC")

R = TypeVar("R")

# The columns the inbox adds to every accepted row: where the record was and when it was read.
RECORD_FIELDS = [
    pa.field("topic", pa.string(), nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
    pa.field("received_at", _TS, nullable=False),
]
REJECTS_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False, metadata={"doc": "the record's value, as received"}),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("rejected_at", _TS, nullable=False),
    ]
)


def offsets_app_id(table: TableRef, topic: str, partition: int) -> str:
    return f"satlake.{table.name}/{topic}/{partition}"


@dataclass
class RequestBatch(Generic[R]):
    """What one tick read: accepted requests with their records, refused records with the reason, and where each
    table stood (a record below a table's position is already in that table)."""

    accepted: list[tuple[R, LogRecord]] = field(default_factory=list)
    refused: list[tuple[LogRecord, str]] = field(default_factory=list)
    positions: dict[TableRef, dict[int, int]] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestInbox(Generic[R]):
    """A requests topic and its two tables. ``parse`` raises ``ValueError`` (with the reason) for a record that
    is not a request; ``columns`` gives an accepted request's own columns of ``accepted_schema`` (the inbox adds
    ``RECORD_FIELDS``)."""

    accepted: TableRef
    accepted_schema: pa.Schema
    rejects: TableRef
    parse: Callable[[bytes], R]
    request_id: Callable[[R], str]
    columns: Callable[[R], Mapping[str, Any]]

    def positions(self, lakehouse: Lakehouse, table: TableRef, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Per topic partition, the first offset ``table`` has not committed."""
        app_ids = {partition: offsets_app_id(table, topic, partition) for partition in partitions}
        versions = lakehouse.transaction_versions(table, list(app_ids.values())) if app_ids else {}
        return {partition: versions.get(app_id) or 0 for partition, app_id in app_ids.items()}

    def read(self, event_log: EventLog, lakehouse: Lakehouse, topic: str) -> RequestBatch[R]:
        """Read and validate the records after the offsets both tables committed (at most
        ``MAX_RECORDS_PER_TICK``)."""
        partitions = event_log.partitions(topic)
        tables = (self.accepted, self.rejects)
        positions = {table: self.positions(lakehouse, table, topic, partitions) for table in tables}
        start = {p: min(positions[table][p] for table in tables) for p in partitions}
        batch: RequestBatch[R] = RequestBatch(positions=positions, next_offsets=dict(start))
        wait_s = event_log.poll_wait(READ_WAIT_S)
        records = event_log.read(topic, start, MAX_RECORDS_PER_TICK, timeout_s=wait_s) if partitions else []
        for record in records:
            batch.next_offsets[record.partition] = record.offset + 1
            try:
                batch.accepted.append((self.parse(record.value), record))
            except ValueError as error:
                batch.refused.append((record, str(error)))
        return batch

    def commit(self, lakehouse: Lakehouse, topic: str, batch: RequestBatch[R], now: datetime) -> list[R]:
        """Write the batch to both tables (rows and offsets in one commit each); returns the requests new to the
        accepted table, in topic order.

        Records a table already holds (a tick that died between the two commits) are not written to it again."""
        known = lakehouse.read(self.accepted, columns=["request_id", "partition", "offset"])
        accepted_at = {r["request_id"]: (r["partition"], r["offset"]) for r in known.to_pylist()} if known else {}
        seen = set(accepted_at)
        accepted: list[tuple[R, LogRecord]] = []
        refused = list(batch.refused)
        for request, record in batch.accepted:
            request_id = self.request_id(request)
            duplicate = f"request id {request_id!r} was received before; it is served once"
            if not _new_to(batch, self.accepted, record):
                # An earlier tick accepted it, or refused it as a duplicate: then its reject row may still be
                # missing (the tick died before its second commit), and it is refused again for that table alone.
                if accepted_at.get(request_id) != (record.partition, record.offset):
                    refused.append((record, duplicate))
                continue
            if request_id in seen:
                refused.append((record, duplicate))
                continue
            seen.add(request_id)
            accepted.append((request, record))
        request_rows = pa.Table.from_pylist(
            [{**self.columns(r), "topic": topic, "partition": rec.partition, "offset": rec.offset,
              "received_at": now} for r, rec in accepted],
            schema=self.accepted_schema,
        )  # fmt: skip
        reject_rows = pa.Table.from_pylist(
            [{"topic": topic, "partition": rec.partition, "offset": rec.offset, "payload": rec.value,
              "reason": reason, "rejected_at": now}
             for rec, reason in refused if _new_to(batch, self.rejects, rec)],
            schema=REJECTS_SCHEMA,
        )  # fmt: skip
        for table, rows in ((self.accepted, request_rows), (self.rejects, reject_rows)):
            transactions = {offsets_app_id(table, topic, p): o for p, o in batch.next_offsets.items()}
            lakehouse.append_exactly_once(table, rows, partition_by=[], app_transactions=transactions)
        return [request for request, _ in accepted]


def _new_to(batch: RequestBatch[Any], table: TableRef, record: LogRecord) -> bool:
    return record.offset >= batch.positions[table].get(record.partition, 0)
