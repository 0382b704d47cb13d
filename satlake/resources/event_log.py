"""The event-log contract shared by the embedded log and Kafka: topics, partitions, offsets, timestamps.

Consumers never commit offsets to the log: the lakehouse records the offsets it has consumed in the same Delta
commit as the rows, and passes them back as ``start_offsets`` on the next read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


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
class OutgoingRecord:
    """A record to append. ``timestamp_ms=None`` lets the log stamp the append time."""

    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None


class EventLogError(RuntimeError):
    """The log could not be read or written; the message names the topic and what to check."""


class EventLog(ABC):
    """Append-only, partitioned log of records: the embedded file log and Kafka both implement it."""

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
    def read(
        self,
        topic: str,
        start_offsets: Mapping[int, int],
        max_records: int,
        timeout_s: float = 5.0,
    ) -> list[LogRecord]:
        """Up to ``max_records`` records at or after ``start_offsets`` (partitions missing there start at 0),
        in offset order within each partition. Returns fewer (possibly none) when the log is exhausted."""

    def close(self) -> None:  # noqa: B027 - optional hook, most implementations hold no connection
        """Release connections or file handles."""

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
