"""The event log on Kafka (confluent-kafka): an idempotent, batching producer and a reader that assigns
explicit offsets and never commits them, because the lakehouse records consumed offsets with its rows.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from satlake.resources.event_log import EventLog, EventLogError, OutgoingRecord, RecordColumns

log = logging.getLogger(__name__)

# A few thousand records per consume() call amortizes the Python overhead (one poll() per record is ~10x
# slower); the cap keeps memory bounded for large values.
CONSUME_BATCH = 5000
_TRANSIENT_OFFSET_ERRORS = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
)
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "zstd",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    # Java clients hash keys with murmur2; librdkafka's default (crc32) would send the same key elsewhere.
    "partitioner": "murmur2_random",
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    # librdkafka stops fetching a partition whose local queue holds queued.min.messages (100,000) and then
    # waits fetch.queue.backoff.ms (default 1,000 ms) before fetching it again: a reader draining a backlog
    # faster than that idles for most of each second (182,000 events/s against 706,000 with 10 ms on the
    # benchmark machine, docs/benchmarks.md section 2).
    "fetch.queue.backoff.ms": 10,
}
_timestamp_value = itemgetter(1)


class _GarbageCollectionPause:
    """Python's cyclic garbage collector off while any reader is inside ``paused()``, back on (if it was on)
    when the last one leaves; readers in several threads share one pause."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._resume = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._readers == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._readers += 1
        try:
            yield
        finally:
            with self._lock:
                self._readers -= 1
                if self._readers == 0 and self._resume:
                    gc.enable()


# Every confluent-kafka ``Message`` is an object the cyclic collector tracks. A read of 100,000 records makes
# that many, each living for one consume() batch: enough survive a young collection to keep triggering full
# collections, which walk every object of the process (pyarrow, deltalake, Dagster...). With the collector
# paused while records are consumed, ingestion of 3 million events went from 285-309,000 to 335-352,000 events/s
# on the benchmark machine, and of 20 million from 308,454 to 346,398/s (docs/benchmarks.md, section 2). The loop
# makes no reference cycles, so nothing waits for the collector; it runs again as soon as the read returns.
_GC_PAUSE = _GarbageCollectionPause()


class KafkaEventLog(EventLog):
    """EventLog over a Kafka cluster reached at ``bootstrap`` (``host:port[,host:port…]``)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "satlake",
        request_timeout_s: float = 10.0,
        producer_config: Mapping[str, Any] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.request_timeout_s = request_timeout_s
        self._producer_config = {**PRODUCER_DEFAULTS, **(producer_config or {})}
        self._consumer_config = dict(consumer_config or {})
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        # (topic, next offset per assigned partition) after a read, while the consumer stays assigned.
        self._positions: tuple[str, dict[int, int]] | None = None
        self._admin: AdminClient | None = None

    def _common(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, "client.id": self.client_id, "logger": log}

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self._common())
        return self._admin

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({**self._common(), **self._producer_config})
        return self._producer

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self._common(),
                    # A group id is required by the client, but nothing is ever committed to it.
                    "group.id": f"{self.client_id}-reader",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    # Reading below the log start means retention deleted records: fail, never skip silently.
                    "auto.offset.reset": "error",
                    "allow.auto.create.topics": False,
                    **CONSUMER_DEFAULTS,
                    **self._consumer_config,
                }
            )
        return self._consumer

    def create_topic(self, topic: str, partitions: int) -> None:
        futures = self.admin.create_topics([NewTopic(topic, num_partitions=partitions)])
        try:
            futures[topic].result(timeout=self.request_timeout_s)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise EventLogError(
                f"could not create Kafka topic {topic!r} ({partitions} partitions) on {self.bootstrap}: {error}"
            ) from error
        # The controller acknowledges before every broker's metadata lists the new partitions; wait for them
        # so that partitions() and end_offsets() right after creation see the whole topic.
        deadline = time.monotonic() + self.request_timeout_s
        while len(self._led_partitions(topic)) < partitions:
            if time.monotonic() > deadline:
                raise EventLogError(
                    f"Kafka topic {topic!r} was created on {self.bootstrap} but its {partitions} partitions did not "
                    f"appear in the metadata within {self.request_timeout_s:.0f}s; check the broker's log"
                )
            time.sleep(0.05)

    def partitions(self, topic: str) -> list[int]:
        # Listing every topic (not just this one) avoids the broker auto-creating ``topic`` as a side effect.
        try:
            metadata = self.admin.list_topics(timeout=self.request_timeout_s)
        except KafkaException as error:
            raise EventLogError(
                f"Kafka at {self.bootstrap} did not answer a metadata request: {error}. Check that the broker is up "
                "(`satlake stack status`) and rerun"
            ) from error
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return []
        return sorted(described.partitions)

    def _led_partitions(self, topic: str) -> list[int]:
        """Partitions of ``topic`` that have a leader, i.e. can be written and have offsets."""
        described = self.admin.list_topics(timeout=self.request_timeout_s).topics.get(topic)
        if described is None or described.error is not None:
            return []
        return sorted(p.id for p in described.partitions.values() if p.leader >= 0 and p.error is None)

    def append(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        """Thread-safe: collectors append from several threads; librdkafka serves a call's delivery reports in
        whichever thread polls, so they are counted with list appends (atomic), not ``+=`` on a shared int."""
        failures: list[str] = []
        acknowledged: list[None] = []

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            if error is None:
                acknowledged.append(None)
            elif len(failures) < 5:
                failures.append(str(error))

        producer = self.producer
        sent = 0
        for record in records:
            kwargs: dict[str, Any] = {"value": record.value, "key": record.key, "on_delivery": on_delivery}
            if record.timestamp_ms is not None:
                kwargs["timestamp"] = record.timestamp_ms
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka send a batch before queueing more.
                    producer.poll(0.1)
            sent += 1
            producer.poll(0)
        remaining = producer.flush(self.request_timeout_s * 3)
        delivered = len(acknowledged)
        if remaining or failures or delivered != sent:
            raise EventLogError(
                f"appending to Kafka topic {topic!r} on {self.bootstrap}: {delivered} of {sent} records "
                f"acknowledged, {remaining} still queued; errors: {failures or 'none'}. Check that the "
                "broker is up (`satlake stack status`) and rerun: the producer is idempotent, a retry is safe"
            )
        return sent

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """(first available offset, next offset to be written) per partition."""
        return {partition: self._watermark(topic, partition) for partition in self.partitions(topic)}

    def _watermark(self, topic: str, partition: int) -> tuple[int, int]:
        # Right after a topic is created or a leader moves, the broker briefly answers "not leader": retry.
        deadline = time.monotonic() + self.request_timeout_s
        while True:
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self.request_timeout_s, cached=False
                )
                return low, high
            except KafkaException as error:
                kafka_error = error.args[0] if error.args else None
                retriable = isinstance(kafka_error, KafkaError) and (
                    kafka_error.retriable() or kafka_error.code() in _TRANSIENT_OFFSET_ERRORS
                )
                if not retriable or time.monotonic() > deadline:
                    raise EventLogError(
                        f"could not read the offsets of {topic}[{partition}] on {self.bootstrap}: {error}. Check that "
                        "the broker is up (`satlake stack status`) and rerun"
                    ) from error
                time.sleep(0.1)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {partition: high for partition, (_low, high) in self.watermarks(topic).items()}

    def read_columns(
        self,
        topic: str,
        start_offsets: Mapping[int, int],
        max_records: int,
        timeout_s: float = 5.0,
        partitions: Collection[int] | None = None,
    ) -> RecordColumns:
        nothing = RecordColumns.empty(topic)
        if max_records <= 0:
            return nothing
        marks = self.watermarks(topic)
        if partitions is not None:
            marks = {p: mark for p, mark in marks.items() if p in partitions}
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for partition, (low, high) in marks.items():
            start = start_offsets.get(partition)
            if start is not None and start < low:
                raise EventLogError(
                    f"{topic}[{partition}]: offset {start} was deleted by the broker's retention (the log "
                    f"now starts at {low}); records {start}..{low - 1} are lost to this reader. Reprocess "
                    "from the raw zone or restart this partition from its first available offset"
                )
            begin = low if start is None else start
            if begin < high:
                starts[partition], ends[partition] = begin, high
        if not starts:
            return nothing
        consumer = self.consumer
        # A read that continues where the previous one stopped keeps the assignment, and with it the records
        # librdkafka has already fetched ahead; any other read seeks.
        if self._positions is None or self._positions != (topic, starts):
            consumer.assign(
                [
                    TopicPartition(topic, p, OFFSET_BEGINNING if start_offsets.get(p) is None else o)
                    for p, o in starts.items()
                ]
            )
        positions = dict(starts)
        self._positions = None
        try:
            with _GC_PAUSE.paused():
                columns = self._consume_until(consumer, topic, ends, max_records, timeout_s, positions)
        except BaseException:
            consumer.unassign()
            raise
        self._positions = (topic, positions)
        return columns

    def _consume_until(
        self,
        consumer: Consumer,
        topic: str,
        ends: dict[int, int],
        max_records: int,
        timeout_s: float,
        positions: dict[int, int],
    ) -> RecordColumns:
        """Consume in batches until every partition reaches the end captured at the start of the read,
        ``max_records`` are collected, or no record arrives for ``timeout_s``. ``positions`` is advanced to
        the offset after the last record consumed from each partition.

        Per message, only five fields are copied out, by ``map`` over the accessors into numpy arrays and lists
        (no Python bytecode per message); which partitions are done, and which records lie past the captured
        ends, is worked out per batch with numpy.
        """
        partitions: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        timestamps: list[np.ndarray] = []
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        pending = set(ends)
        kept = 0
        idle_deadline = time.monotonic() + timeout_s
        while pending and kept < max_records:
            wait = idle_deadline - time.monotonic()
            if wait <= 0:
                log.warning(
                    "read of %s stopped after %.1fs without records; %d records read, partitions %s not at "
                    "their end offsets %s",
                    topic, timeout_s, kept, sorted(pending), {p: ends[p] for p in pending},
                )  # fmt: skip
                break
            batch = consumer.consume(num_messages=min(CONSUME_BATCH, max_records - kept), timeout=min(wait, 1.0))
            if any(map(Message.error, batch)):
                batch = self._without_end_markers(topic, batch, pending)
            if not batch:
                continue
            # The hottest loop of ingestion from Kafka: map() over the unbound accessors stays in C.
            count = len(batch)
            partitions.append(np.fromiter(map(Message.partition, batch), np.int32, count))
            offsets.append(np.fromiter(map(Message.offset, batch), np.int64, count))
            timestamps.append(np.fromiter(map(_timestamp_value, map(Message.timestamp, batch)), np.int64, count))
            keys.extend(map(Message.key, batch))
            values.extend(map(Message.value, batch))
            idle_deadline = time.monotonic() + timeout_s
            kept = self._settle_batch(partitions[-1], offsets[-1], ends, pending, kept, positions)
        if not partitions:
            return RecordColumns.empty(topic)
        columns = RecordColumns.from_lists(
            topic, np.concatenate(partitions), np.concatenate(offsets), np.concatenate(timestamps), keys, values
        )
        return columns.before(ends)

    def _without_end_markers(self, topic: str, batch: list[Message], pending: set[int]) -> list[Message]:
        """The records of ``batch``: end-of-partition markers take their partition out of ``pending``, any other
        error stops the read."""
        records = []
        for message in batch:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
            else:
                raise EventLogError(f"reading {topic}[{message.partition()}] from {self.bootstrap}: {error}")
        return records

    @staticmethod
    def _settle_batch(
        batch_partitions: np.ndarray,
        batch_offsets: np.ndarray,
        ends: dict[int, int],
        pending: set[int],
        kept: int,
        positions: dict[int, int],
    ) -> int:
        """Account for one consumed batch: partitions that reached their captured end leave ``pending``,
        ``positions`` advance; returns how many messages so far lie before their partition's end.

        A batch holds runs of one partition each, offsets rising within a partition, so the work is per run
        (a handful per batch) rather than per message."""
        run_starts = np.flatnonzero(batch_partitions[1:] != batch_partitions[:-1]) + 1
        firsts = np.concatenate(([0], run_starts)).tolist()
        stops = [*run_starts.tolist(), len(batch_partitions)]
        for first, stop in zip(firsts, stops, strict=True):
            partition = int(batch_partitions[first])
            end = ends[partition]
            last = int(batch_offsets[stop - 1])
            if last < end:
                kept += stop - first
            else:
                kept += int(np.searchsorted(batch_offsets[first:stop], end))
            positions[partition] = last + 1
            if last + 1 >= end:
                pending.discard(partition)
        return kept

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.request_timeout_s)
            self._producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._positions = None
        self._admin = None
