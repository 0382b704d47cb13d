"""Exactly-once ingestion of telemetry events from the event log (embedded log or Kafka) into
``raw/telemetry_events``: the consumed offsets are committed in the same Delta commit as the rows.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from satlake.resources.event_log import EventLog, LogRecord, RecordColumns
from satlake.resources.lakehouse import ExactlyOnceWriter, Lakehouse
from satlake.settings import Settings
from satlake.telemetry.codec import EventDecodeError, canonical_timestamps, decode_event_fields
from satlake.telemetry.tables import RAW_TELEMETRY_EVENTS, RAW_TELEMETRY_EVENTS_SCHEMA, UTC_MICROS, UTC_MILLIS

log = logging.getLogger(__name__)

NANOS_PER_DAY = 86_400 * 10**9
# Events stamped this far ahead of their arrival are still routed to their own day (clock skew on board).
MAX_CLOCK_SKEW_NS = 5 * 60 * 10**9


def offsets_app_id(topic: str, partition: int) -> str:
    """The Delta application-transaction id whose version is the next offset to read from a partition."""
    return f"satlake.ingest/{topic}/{partition}"


def committed_offsets(
    lakehouse: Lakehouse | ExactlyOnceWriter, topic: str, partitions: Sequence[int]
) -> dict[int, int]:
    """Next offset to consume per partition, as recorded in the raw table (0 where nothing was consumed)."""
    app_ids = {partition: offsets_app_id(topic, partition) for partition in partitions}
    if isinstance(lakehouse, Lakehouse):
        versions = lakehouse.transaction_versions(RAW_TELEMETRY_EVENTS, list(app_ids.values()))
    else:
        versions = lakehouse.transaction_versions(list(app_ids.values()))
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
    return event_day_hints([payload], received_at_ns)[0].as_py()


def event_day_hints(payloads: pa.Array | Sequence[bytes], received_at_ns: int) -> pa.Array:
    """``event_day_hint`` for a whole batch, as a date32 array, without decoding the events.

    The timestamps of canonical payloads are read for the whole batch at once; only the others (foreign
    layouts, garbage: about one in a hundred in the simulator's faults) are decoded one by one.
    """
    values = payloads if isinstance(payloads, pa.Array) else pa.array(payloads, pa.binary())
    timestamps, found = canonical_timestamps(values)
    others = np.flatnonzero(~found)
    if others.size:
        for index, payload in zip(others.tolist(), values.take(pa.array(others)).to_pylist(), strict=True):
            try:
                timestamps[index] = decode_event_fields(payload)[1]
            except EventDecodeError:
                timestamps[index] = 0
    latest = np.uint64(max(received_at_ns + MAX_CLOCK_SKEW_NS, 0))
    plausible = (timestamps > 0) & (timestamps <= latest)
    days = np.where(plausible, timestamps // np.uint64(NANOS_PER_DAY), received_at_ns // NANOS_PER_DAY)
    return pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())


def raw_event_rows(records: RecordColumns | Sequence[LogRecord], batch_id: str, received_at: datetime) -> pa.Table:
    """Arrow rows for ``raw/telemetry_events``: payloads exactly as received plus their log position."""
    if not isinstance(records, RecordColumns):
        records = RecordColumns.from_records(records[0].topic if records else "", records)
    count = len(records)
    received_at_ns = int(received_at.timestamp() * 1e9)
    receive_day = received_at.astimezone(UTC).date()
    return pa.table(
        {
            "topic": pa.repeat(pa.scalar(records.topic, pa.string()), count),
            "partition": pa.array(records.partition, pa.int32()),
            "offset": pa.array(records.offset, pa.int64()),
            "broker_timestamp": pa.array(records.timestamp_ms, UTC_MILLIS).cast(UTC_MICROS),
            "key": records.key,
            "payload": records.value,
            "event_date": event_day_hints(records.value, received_at_ns),
            "receive_date": pa.repeat(pa.scalar(receive_day, pa.date32()), count),
            "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), count),
            "received_at": pa.repeat(pa.scalar(received_at, UTC_MICROS), count),
        },
        schema=RAW_TELEMETRY_EVENTS_SCHEMA,
    )


def check_contiguous(records: RecordColumns, start: Mapping[int, int]) -> dict[int, int]:
    """The next offset per partition after ``records``, which must continue ``start`` without a gap or a repeat
    in every partition (the log's order); raises before anything could be committed otherwise."""
    following = dict(start)
    for partition in np.unique(records.partition).tolist():
        offsets = records.offset[records.partition == partition]
        first = start.get(partition, 0)
        expected = np.arange(first, first + len(offsets), dtype=np.int64)
        if not np.array_equal(offsets, expected):
            position = int(np.flatnonzero(offsets != expected)[0])
            raise RuntimeError(
                f"{records.topic}[{partition}]: expected offset {expected[position]}, got {offsets[position]}: the "
                "log skipped or repeated records; refusing to commit a gap"
            )
        following[partition] = first + len(offsets)
    return following


@dataclass
class IngestBatch:
    """One committed batch: how many events, from which offsets to which, and the days they belong to."""

    batch_id: str
    events: int
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    event_dates: list[date]
    delta_version: int
    commit_seconds: float = 0.0  # the Delta commit alone (pushed as satlake_delta_commit_seconds)


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


@dataclass
class PreparedBatch:
    """A batch read from the log and turned into raw rows, not committed yet."""

    batch_id: str
    rows: pa.Table
    start_offsets: dict[int, int]  # of the partitions the batch advances
    end_offsets: dict[int, int]


def prepare_batch(
    event_log: EventLog, topic: str, start: Mapping[int, int], max_records: int, stop_at: Mapping[int, int]
) -> PreparedBatch | None:
    """Read up to ``max_records`` events of the partitions in ``start`` from there (never at or past
    ``stop_at``) and build their rows. None when there is nothing to read. Raises when the log skipped or
    repeated an offset."""
    if all(offset >= stop_at.get(partition, 0) for partition, offset in start.items()):
        return None
    records = event_log.read_columns(topic, start, max_records, partitions=list(start)).before(stop_at)
    if not len(records):
        return None
    following = check_contiguous(records, start)
    advanced = {p: o for p, o in following.items() if o != start.get(p, 0)}
    batch_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    return PreparedBatch(
        batch_id=batch_id,
        rows=raw_event_rows(records, batch_id, datetime.now(UTC)),
        start_offsets={p: start.get(p, 0) for p in advanced},
        end_offsets=advanced,
    )


def commit_batch(writer: ExactlyOnceWriter, topic: str, batch: PreparedBatch) -> IngestBatch:
    """Append the rows and advance the partitions' offsets in one Delta commit.

    The commit is checked against the writer's snapshot: if another ingestion committed these offsets since,
    Delta rejects ours (CommitFailedError) and nothing is written twice."""
    started = time.perf_counter()
    version = writer.append(
        batch.rows,
        # By the day the event belongs to, so building a bronze day reads exactly one raw partition.
        partition_by=["event_date"],
        app_transactions={offsets_app_id(topic, p): o for p, o in batch.end_offsets.items()},
        commit_metadata={"satlake.batch_id": batch.batch_id, "satlake.events": str(batch.rows.num_rows)},
    )
    return IngestBatch(
        batch_id=batch.batch_id,
        events=batch.rows.num_rows,
        start_offsets=batch.start_offsets,
        end_offsets=batch.end_offsets,
        event_dates=sorted(pc.unique(batch.rows.column("event_date")).to_pylist()),
        delta_version=version,
        commit_seconds=time.perf_counter() - started,
    )


class BatchCommitter:
    """Commits prepared batches in order on a background thread while the caller reads the next one.

    Reading the log and building rows is Python work; the Delta write is Rust work that releases the GIL, so
    the two overlap on two cores. At most one batch waits while another commits (bounded memory). After a
    failed commit nothing later is committed, and the error is raised to the caller by ``submit``/``finish``.
    """

    def __init__(self, writer: ExactlyOnceWriter, topic: str) -> None:
        self._writer, self._topic = writer, topic
        self._pending: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=1)
        self._committed: queue.Queue[IngestBatch] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"satlake-commit-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._pending.get()) is not None:
            if self._error is not None:
                continue  # drain: nothing after a failed commit may be committed
            try:
                self._committed.put(commit_batch(self._writer, self._topic, batch))
            except BaseException as error:  # re-raised in the caller's thread
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, batch: PreparedBatch) -> None:
        self._raise_if_failed()
        self._pending.put(batch)

    def committed(self) -> list[IngestBatch]:
        """Batches committed since the last call, in commit order."""
        done: list[IngestBatch] = []
        while not self._committed.empty():
            done.append(self._committed.get_nowait())
        return done

    def finish(self) -> list[IngestBatch]:
        """Wait for every submitted batch; returns those not yet collected, or raises the first failure."""
        self._pending.put(None)
        self._thread.join()
        self._raise_if_failed()
        return self.committed()


def ingest_until_caught_up(
    event_log: EventLog,
    lakehouse: Lakehouse,
    topic: str,
    batch_size: int = 50_000,
    max_batches: int | None = None,
    progress: Callable[[IngestBatch], None] | None = None,
    partitions: Collection[int] | None = None,
    writer: ExactlyOnceWriter | None = None,
) -> IngestReport:
    """Commit batches until the offsets seen at the start are all consumed (events arriving meanwhile wait
    for the next run, so a busy topic cannot keep one run going forever).

    The next batch is read while the previous one commits (``BatchCommitter``); offsets come from the raw
    table once, at the start, and each batch continues where the previous one ended. ``partitions`` limits
    the run to some of the topic's partitions (``ingest_in_parallel`` gives each process its share).
    ``writer``: the raw table kept open by a caller that runs pass after pass (``ingest_continuously``); it
    reads only the commits made since its last pass instead of opening the table again."""
    started = time.perf_counter()
    stop_at = event_log.end_offsets(topic)
    if writer is None:
        writer = lakehouse.exactly_once_writer(RAW_TELEMETRY_EVENTS, change_feed=True)
    else:
        writer.refresh()
    chosen = event_log.partitions(topic) if partitions is None else sorted(partitions)
    offsets = committed_offsets(writer, topic, chosen)
    report = IngestReport()
    committer = BatchCommitter(writer, topic)

    def collect(batches: list[IngestBatch]) -> None:
        for batch in batches:
            report.batches.append(batch)
            log.info(
                "committed batch %s: %d events from %s, offsets %s -> %s (delta v%d)",
                batch.batch_id, batch.events, topic, batch.start_offsets, batch.end_offsets, batch.delta_version,
            )  # fmt: skip
            if progress is not None:
                progress(batch)

    submitted = 0
    try:
        while max_batches is None or submitted < max_batches:
            batch = prepare_batch(event_log, topic, offsets, batch_size, stop_at)
            if batch is None:
                break
            committer.submit(batch)
            submitted += 1
            offsets = {**offsets, **batch.end_offsets}
            collect(committer.committed())
    finally:
        collect(committer.finish())
    report.seconds = time.perf_counter() - started
    return report


def ingest_continuously(
    event_log: EventLog,
    lakehouse: Lakehouse,
    topic: str,
    should_stop: Callable[[], bool],
    batch_size: int = 50_000,
    poll_interval_s: float = 0.2,
    progress: Callable[[IngestBatch], None] | None = None,
) -> IngestReport:
    """Ingest until ``should_stop()``: whatever has arrived is committed, then the log is polled again.

    The low-latency mode (``satlake ingest --follow``): a row is visible to queries one commit after it
    reached the log, rather than after the next sensor tick and run start. Stopping between two passes
    never leaves a batch half-committed; a kill at any moment is safe as well (offsets commit with the rows).
    The raw table stays open from pass to pass: each pass reads only the commits made since the last one
    (on object storage, opening the table again took most of a short pass).
    """
    report = IngestReport()
    started = time.perf_counter()
    writer = lakehouse.exactly_once_writer(RAW_TELEMETRY_EVENTS, change_feed=True)
    while not should_stop():
        passed = ingest_until_caught_up(event_log, lakehouse, topic, batch_size, progress=progress, writer=writer)
        report.batches.extend(passed.batches)
        if not passed.events:
            time.sleep(poll_interval_s)
    report.seconds = time.perf_counter() - started
    return report


LogAndLake = Callable[[], tuple[EventLog, Lakehouse]]


def log_and_lake_from_settings(settings: Settings) -> tuple[EventLog, Lakehouse]:
    """The event log and lakehouse of ``settings``' mode (for ``ingest_in_parallel`` through ``partial``)."""
    from satlake.resources import build_resources

    resources = build_resources(settings)
    return resources.event_log, resources.lakehouse


def _ingest_share(open_log_and_lake: LogAndLake, topic: str, partitions: list[int], batch_size: int) -> IngestReport:
    event_log, lakehouse = open_log_and_lake()
    try:
        return ingest_until_caught_up(event_log, lakehouse, topic, batch_size, partitions=partitions)
    finally:
        event_log.close()


def ingest_in_parallel(
    open_log_and_lake: LogAndLake, topic: str, workers: int, batch_size: int = 100_000
) -> IngestReport:
    """``ingest_until_caught_up`` in ``workers`` processes, each owning a share of the topic's partitions.

    Kafka's consumer-per-partition model: reading and building rows is Python work bound to one core per
    process, so a busy topic is ingested by several. Each partition's offsets are its own application
    transaction, so the processes' commits never conflict (Delta serialises them), and a crash of any of
    them loses and duplicates nothing, exactly as with one process. ``open_log_and_lake`` must be picklable
    (a module-level function, or a ``functools.partial`` of one such as ``log_and_lake_from_settings``).
    """
    event_log, lakehouse = open_log_and_lake()
    partitions = event_log.partitions(topic)
    event_log.close()
    if not partitions:
        return IngestReport()
    if lakehouse.open(RAW_TELEMETRY_EVENTS) is None:
        # Created once here: two processes creating the table at the same moment would conflict.
        lakehouse.append_exactly_once(
            RAW_TELEMETRY_EVENTS,
            RAW_TELEMETRY_EVENTS_SCHEMA.empty_table(),
            partition_by=["event_date"],
            app_transactions={},
        )
    shares = [share for share in (partitions[index::workers] for index in range(workers)) if share]
    started = time.perf_counter()
    with ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("spawn")) as pool:
        calls = [pool.submit(_ingest_share, open_log_and_lake, topic, share, batch_size) for share in shares]
        reports = [call.result() for call in calls]
    merged = IngestReport(batches=[batch for report in reports for batch in report.batches])
    merged.seconds = time.perf_counter() - started
    return merged
