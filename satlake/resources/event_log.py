"""The event-log contract shared by the embedded log and Kafka: topics, partitions, offsets, timestamps.

Consumers never commit offsets to the log: the lakehouse records the offsets it has consumed in the same Delta
commit as the rows, and passes them back as ``start_offsets`` on the next read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record as stored by the log: its position, the broker (or log) timestamp, key and payload bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class RecordColumns:
    """Many records of one topic as columns: what ingestion reads, without one Python object per record.

    ``partition``, ``offset`` and ``timestamp_ms`` are numpy arrays (int32, int64, int64); ``key`` and ``value``
    are Arrow binary arrays (a null key is a record without key; values are never null).
    """

    topic: str
    partition: np.ndarray
    offset: np.ndarray
    timestamp_ms: np.ndarray
    key: pa.Array
    value: pa.Array

    def __len__(self) -> int:
        return len(self.offset)

    @classmethod
    def from_lists(
        cls,
        topic: str,
        partition: Sequence[int] | np.ndarray,
        offset: Sequence[int] | np.ndarray,
        timestamp_ms: Sequence[int] | np.ndarray,
        key: Sequence[bytes | None],
        value: Sequence[bytes | None],
    ) -> RecordColumns:
        values = pa.array(value, pa.binary())
        if values.null_count:
            values = values.fill_null(b"")
        return cls(
            topic=topic,
            partition=np.asarray(partition, dtype=np.int32),
            offset=np.asarray(offset, dtype=np.int64),
            timestamp_ms=np.asarray(timestamp_ms, dtype=np.int64),
            key=pa.array(key, pa.binary()),
            value=values,
        )

    @classmethod
    def empty(cls, topic: str) -> RecordColumns:
        """No records of ``topic``."""
        return cls.from_lists(topic, [], [], [], [], [])

    @classmethod
    def from_records(cls, topic: str, records: Sequence[LogRecord]) -> RecordColumns:
        return cls.from_lists(
            topic,
            [r.partition for r in records],
            [r.offset for r in records],
            [r.timestamp_ms for r in records],
            [r.key for r in records],
            [r.value for r in records],
        )

    def take(self, mask: np.ndarray) -> RecordColumns:
        """The records where ``mask`` (a boolean array as long as the columns) is true."""
        if mask.all():
            return self
        indices = pa.array(np.flatnonzero(mask))
        return RecordColumns(
            self.topic,
            self.partition[mask],
            self.offset[mask],
            self.timestamp_ms[mask],
            self.key.take(indices),
            self.value.take(indices),
        )

    def before(self, ends: Mapping[int, int]) -> RecordColumns:
        """The records whose offset lies before their partition's entry in ``ends`` (none for partitions
        missing there)."""
        if not len(self):
            return self
        end_by_partition = np.zeros(max(max(ends, default=0), int(self.partition.max())) + 1, dtype=np.int64)
        for partition, end in ends.items():
            end_by_partition[partition] = end
        return self.take(self.offset < end_by_partition[self.partition])

    def records(self) -> list[LogRecord]:
        """The same records as ``LogRecord`` objects (for callers that want one object per record)."""
        return [
            LogRecord(self.topic, int(p), int(o), int(t), k, v)
            for p, o, t, k, v in zip(
                self.partition.tolist(),
                self.offset.tolist(),
                self.timestamp_ms.tolist(),
                self.key.to_pylist(),
                self.value.to_pylist(),
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to append. ``timestamp_ms=None`` lets the log stamp the append time."""

    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None


class EventLogError(RuntimeError):
    """The log could not be read or written; the message names the topic and what to check."""


class EventLog(ABC):
    """Append-only, partitioned log of records: the embedded file log and Kafka both implement it."""

    def poll_wait(self, wait_s: float) -> float:
        """How long a sensor's read should wait for records that are not there yet: ``wait_s`` for a broker,
        whose records reach a consumer a fetch round trip after they are sent. A log whose appended records are
        readable at once overrides this with 0: waiting would only stretch every sensor tick."""
        return wait_s

    @abstractmethod
    def create_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic`` with ``partitions`` partitions; a no-op when it already exists."""

    @abstractmethod
    def partitions(self, topic: str) -> list[int]:
        """Partition ids of ``topic`` (empty when the topic does not exist)."""

    @abstractmethod
    def append(self, topic: str, records: Iterable[OutgoingRecord]) -> int:
        """Append records durably (keyed records go to the partition their key hashes to); returns the count."""

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition. Cheap: no records are read."""

    @abstractmethod
    def read_columns(
        self,
        topic: str,
        start_offsets: Mapping[int, int],
        max_records: int,
        timeout_s: float = 5.0,
        partitions: Collection[int] | None = None,
    ) -> RecordColumns:
        """Up to ``max_records`` records at or after ``start_offsets`` (partitions missing there start at 0),
        in offset order within each partition, as columns. Returns fewer (possibly none) when the log is
        exhausted. ``partitions`` restricts the read to those partitions (default: all)."""

    def read(
        self,
        topic: str,
        start_offsets: Mapping[int, int],
        max_records: int,
        timeout_s: float = 5.0,
    ) -> list[LogRecord]:
        """``read_columns`` as one ``LogRecord`` per record, for callers that handle records one by one."""
        return self.read_columns(topic, start_offsets, max_records, timeout_s).records()

    def close(self) -> None:  # noqa: B027 - optional hook, most implementations hold no connection
        """Release connections or file handles."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
