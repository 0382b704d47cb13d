"""The sensor that turns acquisition requests on the requests topic into request partitions and runs.

Each tick reads the records after the offsets the requests tables have committed, validates each against the
request schema, and writes the accepted ones to ``raw.acquisition_requests`` and the refused ones (with the
reason) to ``raw.acquisition_request_rejects``. Each table records the next offset per topic partition as a
Delta application transaction in the same commit as its rows, so a tick that dies half way and is run again
writes nothing twice and skips nothing. Every accepted request becomes one dynamic partition of
``raw/acquisitions`` and one run, keyed by the request id (a request id published twice is acquired once).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from satlake.acquisition.assets import ACQUISITION_PARTITIONS, ACQUISITIONS_KEY, REQUEST_TAG
from satlake.acquisition.request import AcquisitionRequest, RequestError, parse_request
from satlake.acquisition.tables import (
    ACQUISITION_REJECTS,
    ACQUISITION_REJECTS_SCHEMA,
    ACQUISITION_REQUESTS,
    ACQUISITION_REQUESTS_SCHEMA,
)
from satlake.automation import SENSOR_DEFAULT_STATUS
from satlake.resources.event_log import EventLog, LogRecord
from satlake.resources.lakehouse import Lakehouse, TableRef
from satlake.settings import Settings

MAX_RECORDS_PER_TICK = 1000
READ_WAIT_S = 5.0

acquisition_job = dg.define_asset_job(
    "acquisition_job",
    selection=dg.AssetSelection.assets(ACQUISITIONS_KEY),
    description="Search a STAC API for one request's scenes and land the windows of their bands",
)


def offsets_app_id(table: TableRef, topic: str, partition: int) -> str:
    return f"satlake.{table.name}/{topic}/{partition}"


@dataclass
class RequestBatch:
    """What one tick read: accepted requests with their records, refused records with the reason, and where each
    requests table stood (a record below a table's position is already in that table)."""

    accepted: list[tuple[AcquisitionRequest, LogRecord]] = field(default_factory=list)
    refused: list[tuple[LogRecord, str]] = field(default_factory=list)
    positions: dict[TableRef, dict[int, int]] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)


def table_positions(lakehouse: Lakehouse, table: TableRef, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """Per topic partition, the first offset ``table`` has not committed."""
    app_ids = {partition: offsets_app_id(table, topic, partition) for partition in partitions}
    versions = lakehouse.transaction_versions(table, list(app_ids.values())) if app_ids else {}
    return {partition: versions.get(app_id) or 0 for partition, app_id in app_ids.items()}


def read_requests(event_log: EventLog, lakehouse: Lakehouse, topic: str) -> RequestBatch:
    """Read and validate the records after the offsets both tables committed (at most ``MAX_RECORDS_PER_TICK``)."""
    partitions = event_log.partitions(topic)
    tables = (ACQUISITION_REQUESTS, ACQUISITION_REJECTS)
    positions = {table: table_positions(lakehouse, table, topic, partitions) for table in tables}
    start = {p: min(positions[table][p] for table in tables) for p in partitions}
    batch = RequestBatch(positions=positions, next_offsets=dict(start))
    records = event_log.read(topic, start, MAX_RECORDS_PER_TICK, timeout_s=READ_WAIT_S) if partitions else []
    for record in records:
        batch.next_offsets[record.partition] = record.offset + 1
        try:
            batch.accepted.append((parse_request(record.value), record))
        except RequestError as error:
            batch.refused.append((record, str(error)))
    return batch


def _new_to(batch: RequestBatch, table: TableRef, record: LogRecord) -> bool:
    return record.offset >= batch.positions[table].get(record.partition, 0)


def commit_requests(lakehouse: Lakehouse, topic: str, batch: RequestBatch, now: datetime) -> list[str]:
    """Write the batch to both tables (rows and offsets in one commit each); returns the ids new to the table.

    A request id already in ``raw.acquisition_requests`` is refused as a duplicate, so it is acquired once.
    Records a table already holds (a tick that died between the two commits) are not written to it again."""
    known = lakehouse.read(ACQUISITION_REQUESTS, columns=["request_id", "partition", "offset"])
    accepted_at = {row["request_id"]: (row["partition"], row["offset"]) for row in known.to_pylist()} if known else {}
    seen = set(accepted_at)
    accepted, refused = [], list(batch.refused)
    for request, record in batch.accepted:
        duplicate = f"request id {request.request_id!r} was received before; it is acquired once"
        if not _new_to(batch, ACQUISITION_REQUESTS, record):
            # An earlier tick accepted it, or refused it as a duplicate: then its reject row may still be missing
            # (the tick died before its second commit), and it is refused again for the rejects table alone.
            if accepted_at.get(request.request_id) != (record.partition, record.offset):
                refused.append((record, duplicate))
            continue
        if request.request_id in seen:
            refused.append((record, duplicate))
            continue
        seen.add(request.request_id)
        accepted.append((request, record))
    request_rows = pa.Table.from_pylist(
        [{"request_id": r.request_id, "aoi": r.aoi, "request_json": r.to_json(), "topic": topic,
          "partition": rec.partition, "offset": rec.offset, "received_at": now} for r, rec in accepted],
        schema=ACQUISITION_REQUESTS_SCHEMA,
    )  # fmt: skip
    reject_rows = pa.Table.from_pylist(
        [{"topic": topic, "partition": rec.partition, "offset": rec.offset, "payload": rec.value,
          "reason": reason, "rejected_at": now}
         for rec, reason in refused if _new_to(batch, ACQUISITION_REJECTS, rec)],
        schema=ACQUISITION_REJECTS_SCHEMA,
    )  # fmt: skip
    for table, rows in ((ACQUISITION_REQUESTS, request_rows), (ACQUISITION_REJECTS, reject_rows)):
        transactions = {offsets_app_id(table, topic, p): o for p, o in batch.next_offsets.items()}
        lakehouse.append_exactly_once(table, rows, partition_by=[], app_transactions=transactions)
    return [request.request_id for request, _ in accepted]


@dg.sensor(
    job=acquisition_job,
    minimum_interval_seconds=30,
    default_status=SENSOR_DEFAULT_STATUS,
    description="Reads acquisition requests from the requests topic exactly once, refuses invalid ones with the "
    "reason (raw.acquisition_request_rejects), and adds a partition and requests a run per accepted request.",
)
def acquisition_requests_sensor(
    context: dg.SensorEvaluationContext,
    settings: dg.ResourceParam[Settings],
    event_log: dg.ResourceParam[EventLog],
    lakehouse: dg.ResourceParam[Lakehouse],
) -> dg.SensorResult | dg.SkipReason:
    topic = settings.acquisition_topic
    if not event_log.partitions(topic):
        return dg.SkipReason(f"{topic}: the topic does not exist yet (no request was published)")
    batch = read_requests(event_log, lakehouse, topic)
    if not batch.accepted and not batch.refused:
        return dg.SkipReason(f"{topic}: no new requests")
    new_ids = commit_requests(lakehouse, topic, batch, datetime.now(UTC))
    existing = set(context.instance.get_dynamic_partitions(ACQUISITION_PARTITIONS.name))
    to_add = sorted(set(new_ids) - existing)
    if to_add:  # as in the scene sensor: `satlake run` launches without the daemon applying the request below
        context.instance.add_dynamic_partitions(ACQUISITION_PARTITIONS.name, to_add)
    context.log.info(
        f"{topic}: offsets now {batch.next_offsets}; {len(new_ids)} requests accepted, "
        f"{len(batch.accepted) + len(batch.refused) - len(new_ids)} refused"
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=request_id, partition_key=request_id, tags={REQUEST_TAG: request_id})
            for request_id in new_ids
        ],
        dynamic_partitions_requests=[ACQUISITION_PARTITIONS.build_add_request(to_add)] if to_add else [],
    )
